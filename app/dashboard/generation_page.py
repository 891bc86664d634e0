"""The Generation page's helpers: personalized vs generic, ratings of generators and styles, latency, and the
generation loop (the preference model's accuracy per version, the prompt policy's style mix, best-of-N wins).

What the generation loop's figures read: the reward model's evaluation runs (model "reward"; `config["version"]`
names the version, metrics "heldout_accuracy" and, from the simulator, "truth_accuracy"); cover assets whose
params carry the prompt policy's arm (`params["policy"]["style"]`, `generation.policy.Arm.as_params`); and
labels on pairs of one shown best-of-N pick (`params["best_of_n"]["rank"] == 0`) against another candidate of the
same choice (`generation.reward.BestOfN.params_for`).

    fig = reward_accuracy_figure(store.eval_runs_frame(s))                      # accuracy per model version
    fig = policy_style_mix_figure(policy_style_mix(store.assets_frame(s)))       # the policy's style mix over time
    outcomes = best_of_n_outcomes(store.preferences_frame(s), store.assets_frame(s))
    fig = best_of_n_figure(best_of_n_rates(outcomes))                            # best-of-N win rate over time
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from annotation import analytics as an
from app.dashboard.charts import PALETTE, SIMULATE_HINT, View, layout, pct, plain
from app.dashboard.data import Frames

BT_ATTRIBUTES = {"generator": "Generator (model id or fallback)", "style": "Prompt style", "source": "Fallback vs model"}
REWARD_MODEL = "reward"
CHANCE = 0.5


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
    fig = layout(fig, height=200, title="Personalized beats generic (95% Wilson interval)")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    side = ("above" if res["low"] > 0.5 else "below" if res["high"] < 0.5 else "not distinguishable from")
    reading = (f"Personalized assets win {pct(res['rate'])} of {decided:,} decided comparisons "
               f"({pct(res['low'])}–{pct(res['high'])}), {side} 50%; {res['ties']:,} ties not counted.")
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
    fig = layout(fig, height=max(220, 60 * len(ratings) + 120),
                  title="Bradley-Terry rating (Elo scale, 95% bootstrap interval)")
    best = ratings.iloc[-1]
    reading = f"{best['player']} rates highest ({best['rating']:.0f}, {best['low']:.0f}–{best['high']:.0f})"
    if len(ratings) > 1:
        second = ratings.iloc[-2]
        gap = best["rating"] - second["rating"]
        p = 1 / (1 + 10 ** (-gap / 400))
        reading += f", {gap:.0f} points above {second['player']}: it would win {pct(p)} of their comparisons"
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
    fig = layout(fig, height=max(260, 70 * len(matrix) + 120), title="Pairwise win rate (row beats column)")
    stacked = matrix.stack().dropna()
    (row, col), value = stacked.idxmax(), stacked.max()
    reading = f"The most one-sided pairing: {row} beats {col} in {pct(value)} of their comparisons."
    return View(figure=fig, table=matrix, reading=reading)


def latency_view(frames: Frames) -> View:
    """Generation latency per generator (cache hits excluded: they measure the cache, not the model)."""
    assets = frames.assets[~frames.assets["cache_hit"].astype(bool)] if not frames.assets.empty else frames.assets
    if assets.empty:
        return View(empty="No generated assets yet. Open recommendations in the app (covers and captions are "
                          "generated on the fly), or seed: " + SIMULATE_HINT)
    fig = px.box(assets, x="generator", y="latency_ms", color="kind", points=False, log_y=True,
                 color_discrete_sequence=PALETTE, labels={"latency_ms": "latency (ms, log scale)", "generator": ""})
    fig = layout(fig, title="Latency by generator")
    med = assets.groupby("generator")["latency_ms"].median().sort_values()
    reading = (f"Median latency ranges from {med.iloc[0]:,.0f} ms ({med.index[0]}) "
               f"to {med.iloc[-1]:,.0f} ms ({med.index[-1]}).")
    if len(med) == 1:
        reading = f"Median latency of {med.index[0]}: {med.iloc[0]:,.0f} ms over {len(assets):,} assets."
    table = assets.groupby(["generator", "kind"])["latency_ms"].describe(percentiles=[0.5, 0.95])[
        ["count", "50%", "95%", "max"]].reset_index()
    return View(figure=fig, table=table, reading=reading)


# ---------------------------------------------------------------------------------- the generation loop
def _params(value) -> dict:
    return value if isinstance(value, dict) else {}


def reward_accuracy_frame(eval_runs: pd.DataFrame, model: str = REWARD_MODEL) -> pd.DataFrame:
    """One row per evaluation run of the reward model, oldest first: created_at, version, metric, value.

    `eval_runs` has `eval_runs_frame`'s columns (model, created_at, config, one column per metric).
    """
    missing = {"model", "created_at", "config"} - set(eval_runs.columns)
    if missing:
        raise ValueError(f"eval_runs must have columns model, created_at, config; missing {sorted(missing)}")
    runs = eval_runs[eval_runs["model"] == model].sort_values("created_at", kind="stable")
    metrics = [m for m in ("heldout_accuracy", "truth_accuracy") if m in runs.columns]
    rows = []
    for record in runs.to_dict("records"):
        config = _params(record["config"])
        version = str(config.get("version") or f"run {record.get('run_id', len(rows))}")
        for metric in metrics:
            if pd.notna(record[metric]):
                rows.append({"created_at": record["created_at"], "version": version, "metric": metric,
                             "value": float(record[metric]), "labels": config.get("labels")})
    return pd.DataFrame(rows, columns=["created_at", "version", "metric", "value", "labels"])


def reward_accuracy_figure(eval_runs: pd.DataFrame, model: str = REWARD_MODEL) -> go.Figure:
    """Held-out pair accuracy (and accuracy against the simulator's truth, when recorded) per model version."""
    frame = reward_accuracy_frame(eval_runs, model)
    frame["metric"] = frame["metric"].map({"heldout_accuracy": "held-out pairs (time split)",
                                           "truth_accuracy": "against the hidden truth (simulation)"})
    frame["version"] = plain(frame["version"])
    fig = px.line(frame, x="version", y="value", color="metric", markers=True, color_discrete_sequence=PALETTE,
                  hover_data=["created_at", "labels"], labels={"value": "pair accuracy", "version": "model version"})
    fig.add_hline(y=CHANCE, line_dash="dot", annotation_text="chance")
    fig.update_yaxes(range=[0.0, 1.0], tickformat=".0%")
    return layout(fig, "Preference model: pair accuracy per version")


def policy_style_mix(assets: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Share of each style among the covers the prompt policy chose, per period: period, style, n, share.

    `assets` has `assets_frame`'s columns (kind, params, created_at); covers without a policy arm are left out.
    """
    missing = {"kind", "params", "created_at"} - set(assets.columns)
    if missing:
        raise ValueError(f"assets must have columns kind, params, created_at; missing {sorted(missing)}")
    covers = assets[assets["kind"] == "cover"]
    styles = covers["params"].map(lambda p: _params(_params(p).get("policy")).get("style"))
    chosen = pd.DataFrame({"period": pd.to_datetime(covers["created_at"]).dt.to_period(freq).dt.start_time,
                           "style": styles}).dropna()
    if chosen.empty:
        return pd.DataFrame(columns=["period", "style", "n", "share"])
    counts = chosen.groupby(["period", "style"]).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("period")["n"].transform("sum")
    return counts.sort_values(["period", "style"], ignore_index=True)


def policy_style_mix_figure(mix: pd.DataFrame) -> go.Figure:
    """A stacked area of `policy_style_mix`: how the policy's choices shift as it learns."""
    frame = mix.assign(style=plain(mix["style"]))
    fig = px.area(frame, x="period", y="share", color="style", color_discrete_sequence=PALETTE,
                  hover_data=["n"], labels={"share": "share of covers", "period": ""})
    fig.update_yaxes(range=[0.0, 1.0], tickformat=".0%")
    return layout(fig, "Prompt policy: style mix of the covers it chose")


def best_of_n_outcomes(preferences: pd.DataFrame, assets: pd.DataFrame) -> pd.DataFrame:
    """One row per decided label between a shown best-of-N pick and another candidate of the same choice:
    created_at, version (the reward model that picked), n, won (the pick was chosen). Ties are left out.

    `preferences` has `preferences_frame`'s columns, `assets` has `assets_frame`'s (asset_id, params).
    """
    for name, frame, columns in (("preferences", preferences, {"choice", "asset_a_id", "asset_b_id", "created_at"}),
                                 ("assets", assets, {"asset_id", "params"})):
        missing = columns - set(frame.columns)
        if missing:
            raise ValueError(f"{name} must have columns {sorted(columns)}; missing {sorted(missing)}")
    info = {int(a): _params(_params(p).get("best_of_n")) for a, p in zip(assets["asset_id"], assets["params"])}
    rows = []
    for label in preferences[preferences["choice"].isin(["A", "B"])].itertuples(index=False):
        if pd.isna(label.asset_a_id) or pd.isna(label.asset_b_id):
            continue
        a, b = info.get(int(label.asset_a_id), {}), info.get(int(label.asset_b_id), {})
        if not a or not b or a.get("version") != b.get("version") or {a.get("rank") == 0, b.get("rank") == 0} != {
                True, False}:
            continue
        pick_is_a = a.get("rank") == 0
        rows.append({"created_at": label.created_at, "version": a.get("version"), "n": a.get("n"),
                     "won": (label.choice == "A") == pick_is_a})
    return pd.DataFrame(rows, columns=["created_at", "version", "n", "won"])


def best_of_n_rates(outcomes: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Win rate of the best-of-N pick per period, with 95% Wilson intervals: period, trials, successes, rate,
    low, high."""
    if outcomes.empty:
        return pd.DataFrame(columns=["period", "trials", "successes", "rate", "low", "high"])
    frame = pd.DataFrame({"period": pd.to_datetime(outcomes["created_at"]).dt.to_period(freq).dt.start_time,
                          "won": outcomes["won"].astype(bool)})
    return an.rate_table(frame, "period", "won")


def best_of_n_figure(rates: pd.DataFrame) -> go.Figure:
    """The pick's win rate over a random other candidate, judged by annotators; 50% = the model adds nothing."""
    fig = go.Figure()
    if len(rates):
        fig.add_trace(go.Scatter(
            x=rates["period"], y=rates["rate"], mode="lines+markers", name="best-of-N pick wins",
            error_y=dict(type="data", symmetric=False, array=(rates["high"] - rates["rate"]).to_numpy(),
                         arrayminus=(rates["rate"] - rates["low"]).to_numpy()),
            customdata=np.stack([rates["trials"]], axis=1), hovertemplate="%{y:.0%} of %{customdata[0]} labels",
        ))
    fig.add_hline(y=CHANCE, line_dash="dot", annotation_text="no better than a random candidate")
    fig.update_yaxes(range=[0.0, 1.0], tickformat=".0%", title="win rate")
    return layout(fig, "Best-of-N: the shown pick against another candidate")
