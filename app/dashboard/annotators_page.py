"""The Annotators page's helpers: throughput, agreement on overlapping pairs, choice distribution."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.express as px

from annotation import analytics as an
from app.dashboard.charts import PALETTE, SIMULATE_HINT, View, layout, pct, plain
from app.dashboard.data import Frames


def _agreement_labels(frames: Frames) -> pd.DataFrame:
    return frames.labels.rename(columns={"pair_id": "item_id", "choice": "label"})[["item_id", "annotator", "label"]]


def throughput_view(frames: Frames) -> View:
    """Labels per annotator per day, and the median time per label."""
    if frames.labels.empty:
        return View(empty="No labels yet. Annotators sign in on the app's Label tab; or seed: " + SIMULATE_HINT)
    per_day = an.annotator_throughput(frames.labels)
    fig = px.bar(per_day.assign(annotator=plain(per_day["annotator"])), x="period", y="labels", color="annotator",
                 color_discrete_sequence=PALETTE,
                 labels={"period": "", "labels": "labels"})
    fig = layout(fig, title="Labels per day by annotator", barmode="stack")
    speed = frames.labels.groupby("annotator").agg(labels=("choice", "size"),
                                                   median_seconds=("time_spent_ms", lambda s: s.median() / 1000))
    speed = speed.sort_values("labels", ascending=False).reset_index()
    top = speed.iloc[0]
    reading = f"{top['annotator']} labeled the most ({int(top['labels']):,})"
    if speed["median_seconds"].notna().any():
        fast = speed.loc[speed["median_seconds"].idxmin()]
        reading += f"; the fastest median time per label is {fast['median_seconds']:.1f} s ({fast['annotator']})"
    return View(figure=fig, table=speed, reading=reading + ".")


def agreement_view(frames: Frames) -> View:
    """Agreement on pairs labeled by several annotators: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha."""
    labels = _agreement_labels(frames)
    pairwise = an.pairwise_cohen_kappa(labels, min_overlap=2) if not labels.empty else pd.DataFrame()
    if pairwise.empty:
        return View(empty="No pair has been labeled by two annotators yet: agreement needs overlap "
                          "(VITRINE_LABEL_OVERLAP >= 2, the default). " + SIMULATE_HINT)
    fleiss = an.fleiss_kappa(labels)
    alpha = an.krippendorff_alpha(labels)
    per = an.annotator_agreement(labels)
    names = sorted(set(pairwise["annotator_a"]) | set(pairwise["annotator_b"]))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for row in pairwise.itertuples(index=False):
        matrix.loc[row.annotator_a, row.annotator_b] = matrix.loc[row.annotator_b, row.annotator_a] = row.kappa
    matrix.index = matrix.columns = [html.escape(str(n)) for n in names]
    fig = px.imshow(matrix, text_auto=".2f", zmin=-1, zmax=1, color_continuous_scale="RdBu", aspect="auto",
                    labels=dict(color="Cohen's κ", x="", y=""))
    fig = layout(fig, height=max(280, 60 * len(names) + 120), title="Cohen's kappa between annotators")
    best, worst = per.iloc[0], per.iloc[-1]
    reading = (f"Overall Fleiss' κ = {fleiss['kappa']:.2f} ({fleiss['items']:,} items × {fleiss['raters_per_item']} "
               f"raters), Krippendorff's α = {alpha:.2f}; {best['annotator']} agrees most with the others "
               f"({pct(best['agreement'])}), {worst['annotator']} least ({pct(worst['agreement'])}).")
    return View(figure=fig, table=per, reading=reading, extra={"fleiss": fleiss, "alpha": alpha, "pairwise": pairwise})


def choices_view(frames: Frames) -> View:
    """Per-annotator choice distribution, to spot position bias (always A) or low effort (always skip/tie)."""
    if frames.labels.empty:
        return View(empty="No labels yet. " + SIMULATE_HINT)
    dist = an.choice_distribution(frames.labels.rename(columns={"choice": "label"}))
    long = dist.melt(id_vars=["annotator", "labels", "position_p"], value_vars=list(an.CHOICES),
                     var_name="choice", value_name="share")
    fig = px.bar(long.assign(annotator=plain(long["annotator"])), y="annotator", x="share", color="choice",
                 orientation="h", barmode="stack",
                 color_discrete_sequence=PALETTE, labels={"annotator": "", "share": "share of labels"},
                 category_orders={"choice": list(an.CHOICES)})
    fig = layout(fig, height=max(240, 45 * len(dist) + 140), title="Choices per annotator")
    fig.update_xaxes(tickformat=".0%")
    flagged = dist[dist["position_p"] < 0.01]
    if flagged.empty:
        reading = "No annotator picks one side significantly more often than the other (binomial test, 1%)."
    else:
        names = ", ".join(f"{r.annotator} (A {pct(r.A)}, p = {r.position_p:.1g})" for r in flagged.itertuples())
        reading = f"Possible position bias: {names}."
    return View(figure=fig, table=dist, reading=reading)
