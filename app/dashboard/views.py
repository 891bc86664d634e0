"""The dashboard's pure helpers: filtered frames in, plotly figures and tables out, each with a one-line reading.

Nothing here imports streamlit or touches the database, so every page's content is unit-testable: the
Streamlit script (`app/dashboard/main.py`) only lays these out. The statistics live in `annotation.analytics`.

A `View` is what one chart needs: the figure (or table), the sentence that reads it for the viewer, and an
`empty` message (what to do) when there is nothing to show yet.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from annotation import analytics as an
from app.web.cards import markdown_escape  # noqa: F401 - the dashboard script uses it as views.markdown_escape
from app.dashboard.data import Frames

SIMULATE_HINT = "Seed a demo database with `python -m app.simulate --users 50 --days 7`."
PALETTE = px.colors.qualitative.Safe
KIND_LABELS = {"click": "Click rate", "like": "Like rate"}
BT_ATTRIBUTES = {"generator": "Generator (model id or fallback)", "style": "Prompt style", "source": "Fallback vs model"}


@dataclass
class View:
    """One block of a page: a figure or a table, its one-line reading, or an empty-state message."""

    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    reading: str = ""
    empty: str | None = None  # set when there is no data: says what to do
    extra: dict[str, Any] = field(default_factory=dict)




def _plain(series: pd.Series) -> pd.Series:
    """Names typed by people, for plotly labels (which understand a few HTML tags): HTML-escaped."""
    return series.astype(str).map(html.escape)


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _layout(fig: go.Figure, height: int = 360, **kwargs) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="",
                      template="plotly_white", **kwargs)
    return fig


# --------------------------------------------------------------------------------------------- overview
def _per_day(times: pd.Series) -> pd.Series:
    t = pd.to_datetime(times)
    return t.dt.normalize() if len(t) else pd.Series(dtype="datetime64[ns]")


def overview_counts(frames: Frames, today: dt.date) -> pd.DataFrame:
    """Totals and today's numbers for the headline metrics: `metric, total, today`."""
    day = pd.Timestamp(today)
    daily = frames.daily

    def stream(series: str) -> tuple[int, int]:
        part = daily[daily["series"] == series]
        return int(part["count"].sum()), int(part.loc[part["day"] == day, "count"].sum())

    def small(times: pd.Series) -> tuple[int, int]:
        return len(times), int((_per_day(times) == day).sum())

    users = frames.user_days
    label_days = _per_day(frames.labels["created_at"])
    rows = [
        ("Feedback events", *stream("feedback events")),
        ("Slates shown", *stream("slates shown")),
        ("Active users", int(users["user_id"].nunique()), int(users.loc[users["day"] == day, "user_id"].nunique())),
        ("Annotators", int(frames.labels["annotator"].nunique()),
         int(frames.labels.loc[label_days == day, "annotator"].nunique())),
        ("Preference labels", *small(frames.labels["created_at"])),
        ("Generated assets", *small(frames.assets["created_at"])),
    ]
    return pd.DataFrame(rows, columns=["metric", "total", "today"])


def activity_view(frames: Frames) -> View:
    """Events and slates (aggregated in SQL), labels and assets per day, and distinct active users and annotators."""
    parts = [frames.daily.groupby(["day", "series"], as_index=False)["count"].sum()]
    for name, times in (("preference labels", frames.labels["created_at"]),
                        ("generated assets", frames.assets["created_at"])):
        days = _per_day(times)
        if len(days):
            counts = days.value_counts()
            parts.append(pd.DataFrame({"day": counts.index, "series": name, "count": counts.to_numpy()}))
    if len(frames.user_days):
        users = frames.user_days.groupby("day")["user_id"].nunique()
        parts.append(pd.DataFrame({"day": users.index, "series": "active users", "count": users.to_numpy()}))
    if len(frames.labels):
        ann = frames.labels.groupby(_per_day(frames.labels["created_at"]))["annotator"].nunique()
        parts.append(pd.DataFrame({"day": ann.index, "series": "active annotators", "count": ann.to_numpy()}))
    series = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if series is None or series.empty:
        return View(empty=f"No activity in this range yet. {SIMULATE_HINT} Or use the app and come back.")
    series = series.sort_values(["day", "series"], ignore_index=True)
    fig = px.line(series, x="day", y="count", color="series", markers=True, log_y=True,
                  color_discrete_sequence=PALETTE, labels={"day": "", "count": "count (log scale)"})
    fig = _layout(fig, title="Activity per day")
    events = series[series["series"] == "feedback events"]
    if events.empty:
        reading = f"No feedback yet over {series['day'].nunique()} active days."
    else:
        top = events.loc[events["count"].idxmax()]
        reading = (f"{int(events['count'].sum()):,} feedback events over {events['day'].nunique()} active days; "
                   f"the busiest day was {top['day']:%Y-%m-%d} with {int(top['count']):,}.")
    return View(figure=fig, reading=reading)


# ----------------------------------------------------------------------------------------- recommenders
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
    fig = _layout(fig, title=f"{metric} per model (cold-start vs warm splits side by side)")
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
    fig = _layout(fig, title="Online rates per model (share of shown items, 95% Wilson interval)", barmode="group")
    fig.update_yaxes(tickformat=".0%")
    likes = rates[rates["kind"] == "like"].sort_values("rate", ascending=False)
    if likes.empty:
        return View(figure=fig, table=rates, reading="No likes recorded in this range.")
    best = likes.iloc[0]
    reading = (f"{best['model']} has the highest like rate, {_pct(best['rate'])} "
               f"({_pct(best['low'])}–{_pct(best['high'])})")
    if len(likes) > 1:
        second = likes.iloc[1]
        sep = "clearly above" if best["low"] > second["high"] else "with intervals overlapping"
        reading += f", {sep} {second['model']} at {_pct(second['rate'])}"
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
    fig = _layout(fig, height=max(220, 90 * len(summary) + 120), barmode="stack",
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
    catalog = int(catalog_size or max(len(frames.items), 1))
    genres = frames.items.set_index("item_id")["genres"] if not frames.items.empty else None
    table = an.exposure_metrics(frames.slates, catalog_size=catalog, popularity=frames.popularity, genres=genres)
    long = table.melt(id_vars=["model", "slates"], value_vars=["coverage", "novelty", "diversity"],
                      var_name="figure", value_name="value")
    fig = px.bar(long, x="model", y="value", color="model", facet_col="figure", color_discrete_sequence=PALETTE,
                 labels={"model": "", "value": ""})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig = _layout(fig, title=f"Beyond accuracy over the {len(frames.slates):,} most recent slates: catalog coverage, "
                             "novelty (bits), genre diversity", showlegend=False)
    widest = table.loc[table["coverage"].idxmax()]
    reading = f"{widest['model']} covers the most of the catalog ({_pct(widest['coverage'])} of {catalog:,} items)"
    if table["novelty"].notna().any():
        novel = table.loc[table["novelty"].idxmax()]
        reading += f"; {novel['model']} shows the least popular items ({novel['novelty']:.1f} bits)"
    return View(figure=fig, table=table, reading=reading + ".")


# ------------------------------------------------------------------------------------------- generation
def _asset_labels(frames: Frames) -> pd.DataFrame:
    return frames.labels[frames.labels["asset_a_id"].notna() & frames.labels["asset_b_id"].notna()]


def personalized_view(frames: Frames) -> View:
    """Personalized vs generic: the personalized asset's win rate with its Wilson interval."""
    labels = _asset_labels(frames)
    if labels.empty or frames.asset_index.empty:
        return View(empty="No preference labels on generated assets yet. Label pairs in the app's Label tab, "
                          "or seed: " + SIMULATE_HINT)
    res = an.personalized_win_rate(labels, frames.asset_index)
    decided = res["wins"] + res["losses"]
    if decided == 0:
        return View(empty="No decided personalized-vs-generic comparison yet (only ties, skips or same-kind pairs).")
    fig = go.Figure(go.Bar(x=[res["rate"]], y=["personalized"], orientation="h", marker_color=PALETTE[0],
                           error_x=dict(type="data", symmetric=False, array=[res["high"] - res["rate"]],
                                        arrayminus=[res["rate"] - res["low"]])))
    fig.add_vline(x=0.5, line_dash="dash", line_color="grey", annotation_text="no preference",
                  annotation_position="bottom right")
    fig = _layout(fig, height=200, title="Personalized beats generic (95% Wilson interval)")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    side = ("above" if res["low"] > 0.5 else "below" if res["high"] < 0.5 else "not distinguishable from")
    reading = (f"Personalized assets win {_pct(res['rate'])} of {decided:,} decided comparisons "
               f"({_pct(res['low'])}–{_pct(res['high'])}), {side} 50%; {res['ties']:,} ties not counted.")
    return View(figure=fig, reading=reading, extra=res)


def generator_comparisons(frames: Frames, attribute: str = "generator") -> pd.DataFrame:
    """Asset preference labels as comparisons between values of `attribute` (see BT_ATTRIBUTES)."""
    if attribute not in BT_ATTRIBUTES:
        raise ValueError(f"attribute must be one of {list(BT_ATTRIBUTES)}, got {attribute!r}")
    labels = _asset_labels(frames)
    if labels.empty or frames.asset_index.empty:
        return pd.DataFrame(columns=["a", "b", "winner"])
    return an.asset_comparisons(labels, frames.asset_index, by=attribute)


def bradley_terry_view(frames: Frames, attribute: str = "generator", rounds: int = 100, seed: int = 0) -> View:
    """Bradley-Terry ratings of generators (or prompt styles, or fallback vs model) with bootstrap intervals."""
    comp = generator_comparisons(frames, attribute)
    decided = comp[comp["winner"] != "skip"] if not comp.empty else comp
    if decided.empty or len(set(decided["a"]) | set(decided["b"])) < 2:
        return View(empty=f"No labels compare two different values of {BT_ATTRIBUTES[attribute].lower()} yet. "
                          + SIMULATE_HINT)
    ratings = an.bootstrap_bradley_terry(decided, rounds=rounds, seed=seed, regularization=0.01)
    # Online Elo in label order, next to the order-free Bradley-Terry MLE (as the Arena reports both)
    ratings["elo"] = ratings["player"].map(an.elo_ratings(decided))
    ratings = ratings.sort_values("rating")
    fig = go.Figure(go.Scatter(
        x=ratings["rating"], y=ratings["player"], mode="markers", marker=dict(size=12, color=PALETTE[0]),
        error_x=dict(type="data", symmetric=False, array=ratings["high"] - ratings["rating"],
                     arrayminus=ratings["rating"] - ratings["low"]),
        customdata=ratings["comparisons"], hovertemplate="%{y}: %{x:.0f} (%{customdata} comparisons)<extra></extra>",
    ))
    fig = _layout(fig, height=max(220, 60 * len(ratings) + 120),
                  title="Bradley-Terry rating (Elo scale, 95% bootstrap interval)")
    best = ratings.iloc[-1]
    reading = f"{best['player']} rates highest ({best['rating']:.0f}, {best['low']:.0f}–{best['high']:.0f})"
    if len(ratings) > 1:
        second = ratings.iloc[-2]
        gap = best["rating"] - second["rating"]
        p = 1 / (1 + 10 ** (-gap / 400))
        reading += f", {gap:.0f} points above {second['player']}: it would win {_pct(p)} of their comparisons"
    return View(figure=fig, table=ratings[::-1].reset_index(drop=True), reading=reading + ".")


def win_matrix_view(frames: Frames, attribute: str = "generator") -> View:
    """Observed pairwise win rates as a heatmap (row beats column)."""
    comp = generator_comparisons(frames, attribute)
    decided = comp[comp["winner"] != "skip"] if not comp.empty else comp
    if decided.empty:
        return View(empty="No pairwise labels between different generators yet. " + SIMULATE_HINT)
    matrix = an.win_rate_matrix(decided)
    fig = px.imshow(matrix, text_auto=".0%", zmin=0, zmax=1, color_continuous_scale="RdBu",
                    labels=dict(x="opponent", y="player", color="win rate"), aspect="auto")
    fig = _layout(fig, height=max(260, 70 * len(matrix) + 120), title="Pairwise win rate (row beats column)")
    stacked = matrix.stack().dropna()
    (row, col), value = stacked.idxmax(), stacked.max()
    reading = f"The most one-sided pairing: {row} beats {col} in {_pct(value)} of their comparisons."
    return View(figure=fig, table=matrix, reading=reading)


def latency_view(frames: Frames) -> View:
    """Generation latency per generator (cache hits excluded: they measure the cache, not the model)."""
    assets = frames.assets[~frames.assets["cache_hit"].astype(bool)] if not frames.assets.empty else frames.assets
    if assets.empty:
        return View(empty="No generated assets yet. Open recommendations in the app (covers and captions are "
                          "generated on the fly), or seed: " + SIMULATE_HINT)
    fig = px.box(assets, x="generator", y="latency_ms", color="kind", points=False, log_y=True,
                 color_discrete_sequence=PALETTE, labels={"latency_ms": "latency (ms, log scale)", "generator": ""})
    fig = _layout(fig, title="Latency by generator")
    med = assets.groupby("generator")["latency_ms"].median().sort_values()
    reading = (f"Median latency ranges from {med.iloc[0]:,.0f} ms ({med.index[0]}) "
               f"to {med.iloc[-1]:,.0f} ms ({med.index[-1]}).")
    if len(med) == 1:
        reading = f"Median latency of {med.index[0]}: {med.iloc[0]:,.0f} ms over {len(assets):,} assets."
    table = assets.groupby(["generator", "kind"])["latency_ms"].describe(percentiles=[0.5, 0.95])[
        ["count", "50%", "95%", "max"]].reset_index()
    return View(figure=fig, table=table, reading=reading)


# ------------------------------------------------------------------------------------------- annotators
def _agreement_labels(frames: Frames) -> pd.DataFrame:
    return frames.labels.rename(columns={"pair_id": "item_id", "choice": "label"})[["item_id", "annotator", "label"]]


def throughput_view(frames: Frames) -> View:
    """Labels per annotator per day, and the median time per label."""
    if frames.labels.empty:
        return View(empty="No labels yet. Annotators sign in on the app's Label tab; or seed: " + SIMULATE_HINT)
    per_day = an.annotator_throughput(frames.labels)
    fig = px.bar(per_day.assign(annotator=_plain(per_day["annotator"])), x="period", y="labels", color="annotator",
                 color_discrete_sequence=PALETTE,
                 labels={"period": "", "labels": "labels"})
    fig = _layout(fig, title="Labels per day by annotator", barmode="stack")
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
    fig = _layout(fig, height=max(280, 60 * len(names) + 120), title="Cohen's kappa between annotators")
    best, worst = per.iloc[0], per.iloc[-1]
    reading = (f"Overall Fleiss' κ = {fleiss['kappa']:.2f} ({fleiss['items']:,} items × {fleiss['raters_per_item']} "
               f"raters), Krippendorff's α = {alpha:.2f}; {best['annotator']} agrees most with the others "
               f"({_pct(best['agreement'])}), {worst['annotator']} least ({_pct(worst['agreement'])}).")
    return View(figure=fig, table=per, reading=reading, extra={"fleiss": fleiss, "alpha": alpha, "pairwise": pairwise})


def choices_view(frames: Frames) -> View:
    """Per-annotator choice distribution, to spot position bias (always A) or low effort (always skip/tie)."""
    if frames.labels.empty:
        return View(empty="No labels yet. " + SIMULATE_HINT)
    dist = an.choice_distribution(frames.labels.rename(columns={"choice": "label"}))
    long = dist.melt(id_vars=["annotator", "labels", "position_p"], value_vars=list(an.CHOICES),
                     var_name="choice", value_name="share")
    fig = px.bar(long.assign(annotator=_plain(long["annotator"])), y="annotator", x="share", color="choice",
                 orientation="h", barmode="stack",
                 color_discrete_sequence=PALETTE, labels={"annotator": "", "share": "share of labels"},
                 category_orders={"choice": list(an.CHOICES)})
    fig = _layout(fig, height=max(240, 45 * len(dist) + 140), title="Choices per annotator")
    fig.update_xaxes(tickformat=".0%")
    flagged = dist[dist["position_p"] < 0.01]
    if flagged.empty:
        reading = "No annotator picks one side significantly more often than the other (binomial test, 1%)."
    else:
        names = ", ".join(f"{r.annotator} (A {_pct(r.A)}, p = {r.position_p:.1g})" for r in flagged.itertuples())
        reading = f"Possible position bias: {names}."
    return View(figure=fig, table=dist, reading=reading)
