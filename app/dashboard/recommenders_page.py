"""The Recommenders page's helpers: offline evaluation, online rates, interleaving, beyond accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from annotation import analytics as an
from app.dashboard.charts import PALETTE, SIMULATE_HINT, View, layout, pct
from app.dashboard.data import Frames

KIND_LABELS = {"click": "Click rate", "like": "Like rate"}


def offline_view(frames: Frames, metric: str | None = None) -> View:
    """Offline evaluation: a metric@K table (latest run per model and split) and bars for one metric."""
    runs = frames.eval_runs
    if runs.empty:
        return View(empty="No offline evaluation runs yet. Train and evaluate with "
                          "`python -m recommenders evaluate` (it records each run in the database), or seed: "
                          + SIMULATE_HINT)
    long = an.eval_metrics_long(runs)
    if long.empty:
        return View(empty="The evaluation runs recorded no numeric metrics.")
    long["name"] = long["metric"] + long["k"].map(lambda k: "" if pd.isna(k) else f"@{int(k)}")
    table = long.pivot_table(index=["model", "split"], columns="name", values="value").reset_index()
    names = sorted(long["name"].unique())
    metric = metric if metric in names else next((n for n in names if n.startswith("ndcg@")), names[0])
    chosen = long[long["name"] == metric].sort_values("value", ascending=False)
    fig = px.bar(chosen, x="model", y="value", color="split", barmode="group", color_discrete_sequence=PALETTE,
                 labels={"value": metric, "model": ""}, text_auto=".3f")
    fig = layout(fig, title=f"{metric} per model (cold-start vs warm splits side by side)")
    best = chosen.iloc[0]
    reading = f"On {metric}, {best['model']} leads on the {best['split']} split ({best['value']:.3f})"
    for split in chosen["split"].unique():
        if split == best["split"]:
            continue
        part = chosen[chosen["split"] == split]
        top = part["value"].max()
        leaders = part[part["value"] >= top - 1e-12]["model"].tolist()
        reading += (f"; on {split}: {leaders[0]} ({top:.3f})" if len(leaders) == 1
                    else f"; on {split}: {' and '.join(leaders)} tie ({top:.3f})")
    return View(figure=fig, table=table, reading=reading + ".", extra={"metrics": names, "metric": metric})


def online_rates_view(frames: Frames) -> View:
    """Click and like rates per model (items credited to the model that placed them), 95% Wilson intervals."""
    rates = frames.rates[frames.rates["trials"] > 0]
    if rates.empty:
        return View(empty="No slates served yet. Browse recommendations in the app, or seed: " + SIMULATE_HINT)
    rates = rates.assign(successes=rates["successes"].astype("int64"), trials=rates["trials"].astype("int64"))
    rates["rate"] = rates["successes"] / rates["trials"]
    rates["low"], rates["high"] = an.wilson_interval(rates["successes"].to_numpy(), rates["trials"].to_numpy())
    fig = go.Figure()
    for i, (kind, part) in enumerate(rates.groupby("kind", sort=True)):
        fig.add_bar(x=part["model"], y=part["rate"], name=KIND_LABELS.get(kind, kind), marker_color=PALETTE[i],
                    error_y=dict(type="data", symmetric=False, array=part["high"] - part["rate"],
                                 arrayminus=part["rate"] - part["low"]),
                    customdata=np.stack([part["successes"], part["trials"]], axis=1),
                    hovertemplate="%{x}: %{y:.2%} (%{customdata[0]} of %{customdata[1]} shown items)<extra></extra>")
    fig = layout(fig, title="Online rates per model (share of shown items, 95% Wilson interval)", barmode="group")
    fig.update_yaxes(tickformat=".0%")
    likes = rates[rates["kind"] == "like"].sort_values("rate", ascending=False)
    if likes.empty:
        return View(figure=fig, table=rates, reading="No likes recorded in this range.")
    best = likes.iloc[0]
    reading = (f"{best['model']} has the highest like rate, {pct(best['rate'])} "
               f"({pct(best['low'])}–{pct(best['high'])})")
    if len(likes) > 1:
        second = likes.iloc[1]
        sep = "clearly above" if best["low"] > second["high"] else "with intervals overlapping"
        reading += f", {sep} {second['model']} at {pct(second['rate'])}"
    table = rates[["model", "kind", "trials", "successes", "rate", "low", "high"]].reset_index(drop=True)
    return View(figure=fig, table=table, reading=reading + ".")


def interleaving_view(frames: Frames) -> View:
    """Team-draft interleaving: wins per model pair with the sign test's p-value."""
    clicks = frames.interleaved_clicks
    if clicks.empty:
        return View(empty="No clicks on interleaved slates yet. Pick two models in the app's interleaving mode, or "
                          "seed: " + SIMULATE_HINT)
    slates = clicks[["impression_id", "model", "model_b"]].drop_duplicates("impression_id")
    credit = an.interleaving_credit(slates, clicks, kind="click")
    summary = an.interleaving_summary(credit)
    summary = summary.assign(pair=summary["model_a"] + " vs " + summary["model_b"])
    fig = go.Figure()
    fig.add_bar(y=summary["pair"], x=summary["wins_a"], name="wins of the first model", orientation="h",
                marker_color=PALETTE[0], text=summary["model_a"], textposition="inside")
    fig.add_bar(y=summary["pair"], x=summary["ties"], name="ties", orientation="h", marker_color="#cccccc")
    fig.add_bar(y=summary["pair"], x=summary["wins_b"], name="wins of the second model", orientation="h",
                marker_color=PALETTE[1], text=summary["model_b"], textposition="inside")
    fig = layout(fig, height=max(220, 90 * len(summary) + 120), barmode="stack",
                  title="Interleaved impressions won (clicks credited to the model that placed the item)")
    top = summary.loc[summary["delta"].abs().idxmax()]
    leader, other = (top["model_a"], top["model_b"]) if top["delta"] > 0 else (top["model_b"], top["model_a"])
    won = max(top["wins_a"], top["wins_b"])
    verdict = "significant" if top["p_value"] < 0.05 else "not significant"
    reading = (f"{leader} wins {int(won)} of {int(top['wins_a'] + top['wins_b'])} decided impressions against "
               f"{other} (sign test p = {top['p_value']:.2g}, {verdict} at 5%).")
    table = summary[["model_a", "model_b", "impressions", "wins_a", "wins_b", "ties", "win_rate_a", "low", "high",
                     "delta", "p_value"]]
    return View(figure=fig, table=table, reading=reading)


def beyond_accuracy_view(frames: Frames, catalog_size: int | None = None) -> View:
    """Coverage, novelty and intra-list diversity of the slates each model showed (the most recent ones)."""
    if frames.slates.empty:
        return View(empty="Beyond-accuracy figures need served slates. " + SIMULATE_HINT)
    catalog = int(catalog_size or frames.catalog_size or max(len(frames.items), 1))
    genres = frames.items.set_index("item_id")["genres"] if not frames.items.empty else None
    table = an.exposure_metrics(frames.slates, catalog_size=catalog, popularity=frames.popularity, genres=genres,
                                popularity_total=frames.popularity_total or None)
    long = table.melt(id_vars=["model", "slates"], value_vars=["coverage", "novelty", "diversity"],
                      var_name="figure", value_name="value")
    fig = px.bar(long, x="model", y="value", color="model", facet_col="figure", color_discrete_sequence=PALETTE,
                 labels={"model": "", "value": ""})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig = layout(fig, title=f"Beyond accuracy over the {len(frames.slates):,} most recent slates: catalog coverage, "
                             "novelty (bits), genre diversity", showlegend=False)
    widest = table.loc[table["coverage"].idxmax()]
    reading = f"{widest['model']} covers the most of the catalog ({pct(widest['coverage'])} of {catalog:,} items)"
    if table["novelty"].notna().any():
        novel = table.loc[table["novelty"].idxmax()]
        reading += f"; {novel['model']} shows the least popular items ({novel['novelty']:.1f} bits)"
    return View(figure=fig, table=table, reading=reading + ".")
