"""The generation loop on the dashboard: pure functions, store frames in, plotly figures out.

    fig = reward_accuracy_figure(store.eval_runs_frame(s))                      # accuracy per model version
    fig = policy_style_mix_figure(policy_style_mix(store.assets_frame(s)))       # the policy's style mix over time
    outcomes = best_of_n_outcomes(store.preferences_frame(s), store.assets_frame(s))
    fig = best_of_n_figure(best_of_n_rates(outcomes))                            # best-of-N win rate over time

What they read: the reward model's evaluation runs (model "reward"; `config["version"]` names the version,
metrics "heldout_accuracy" and, from the simulator, "truth_accuracy"); cover assets whose params carry the
prompt policy's arm (`params["policy"]["style"]`, `generation.policy.Arm.as_params`); and labels on pairs of
one shown best-of-N pick (`params["best_of_n"]["rank"] == 0`) against another candidate of the same choice
(rank > 0, `generation.reward.BestOfN.params_for`). Nothing here imports streamlit or touches the database.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from annotation import analytics as an

PALETTE = px.colors.qualitative.Safe
REWARD_MODEL = "reward"
CHANCE = 0.5


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="",
                      template="plotly_white")
    return fig


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
    frame["version"] = frame["version"].map(html.escape)
    fig = px.line(frame, x="version", y="value", color="metric", markers=True, color_discrete_sequence=PALETTE,
                  hover_data=["created_at", "labels"], labels={"value": "pair accuracy", "version": "model version"})
    fig.add_hline(y=CHANCE, line_dash="dot", annotation_text="chance")
    fig.update_yaxes(range=[0.0, 1.0], tickformat=".0%")
    return _layout(fig, "Preference model: pair accuracy per version")


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
    frame = mix.assign(style=mix["style"].astype(str).map(html.escape))
    fig = px.area(frame, x="period", y="share", color="style", color_discrete_sequence=PALETTE,
                  hover_data=["n"], labels={"share": "share of covers", "period": ""})
    fig.update_yaxes(range=[0.0, 1.0], tickformat=".0%")
    return _layout(fig, "Prompt policy: style mix of the covers it chose")


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
    return _layout(fig, "Best-of-N: the shown pick against another candidate")
