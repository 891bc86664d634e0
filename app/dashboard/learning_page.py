"""The Learning page's helpers: DataFrames in, plotly figures out.

- `versions_table(versions)` + `versions_figure(...)`: model versions over time (from
  `annotation.registry.versions_frame`), their offline and recent-holdout NDCG@10 next to the served
  version's (preference models: held-out pair accuracy, in the table), and the gate's decision (promoted /
  rejected, the reason on hover);
- `curves_frame(report)` + `learning_curves_figure(...)`: the simulated learning curves of
  `python -m app.simulate --rounds R --retrain --json OUT`, every arm with its 95% interval;
- `ips_frame(report)` + `ips_figure(...)`: IPS and SNIPS estimates of second models' like rate next to
  their simulated truth.
Nothing here imports streamlit or touches the database. Model names and reasons are HTML-escaped for plotly.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.dashboard.charts import PALETTE, layout, plain

DECISION_COLORS = {"promoted": "#2ca02c", "rejected": "#d62728", None: "#7f7f7f"}
LEGEND_BELOW = dict(orientation="h", y=-0.2)  # long trace names: the legend under the plot
ARM_LABELS = {"static": "control (static)", "fold-in": "fold-in", "visit": "fold-in + within the visit",
              "retrain": "treatment (within the visit + retrain)"}


def _get(metrics: Any, *path: str) -> float:
    for key in path:
        if not isinstance(metrics, Mapping) or key not in metrics:
            return float("nan")
        metrics = metrics[key]
    return float("nan") if metrics is None else float(metrics)


def versions_table(versions: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per version: name, kind, version, created_at, decision, promoted, watermark, reason, and the
    metric of the candidate and of the version served next to it, offline (the gate's part) and on the recent
    holdout; for a preference (reward) model, its held-out pair accuracy, and the candidate's and the served
    version's on the held-out pairs newer than what the served one trained on (the gate's comparison)."""
    rows = []
    for r in versions.itertuples(index=False):
        m = r.metrics or {}
        part = m.get("gate_part", "valid")
        rows.append({
            "name": r.name, "kind": getattr(r, "kind", "recommender"), "version": int(r.version),
            "created_at": r.created_at, "decision": r.decision,
            "promoted": bool(r.promoted), "watermark": r.watermark, "reason": r.reason or "",
            "offline": _get(m, "candidate", "offline", part, metric),
            "served_offline": _get(m, "served", "offline", part, metric),
            "holdout": _get(m, "candidate", "holdout", metric),
            "served_holdout": _get(m, "served", "holdout", metric),
            "pair_accuracy": _get(m, "candidate", "heldout_accuracy"),
            "fresh_pair_accuracy": _get(m, "candidate_on_fresh"),
            "served_pair_accuracy": _get(m, "served", "heldout_accuracy"),
        })
    columns = ["name", "kind", "version", "created_at", "decision", "promoted", "watermark", "reason", "offline",
               "served_offline", "holdout", "served_holdout", "pair_accuracy", "fresh_pair_accuracy",
               "served_pair_accuracy"]
    return pd.DataFrame(rows, columns=columns)


def versions_figure(table: pd.DataFrame, metric: str = "ndcg@10") -> go.Figure:
    """Candidate metrics of recommender versions over time, marker colour = decision, the served version ringed."""
    fig = go.Figure()
    table = table[table["kind"] == "recommender"] if "kind" in table else table
    for col, label, dash in (("offline", f"offline split {metric}", "solid"), ("holdout", f"recent holdout {metric}",
                                                                               "dot")):
        for name, group in table.groupby("name", sort=True):
            group = group.sort_values("created_at")
            fig.add_trace(go.Scatter(
                x=group["created_at"], y=group[col], mode="lines+markers", name=f"{html.escape(str(name))}: {label}",
                line=dict(dash=dash, color="#999999"),
                marker=dict(size=[16 if p else 10 for p in group["promoted"]],
                            color=[DECISION_COLORS.get(d, "#7f7f7f") for d in group["decision"]],
                            line=dict(width=[3 if p else 0 for p in group["promoted"]], color="black")),
                customdata=np.stack([group["version"], group["decision"].fillna("not gated"),
                                     group["reason"].map(lambda s: html.escape(s)[:300])], axis=1),
                hovertemplate="v%{customdata[0]} %{customdata[1]}<br>%{y:.4f}<br>%{customdata[2]}<extra></extra>",
            ))
    return layout(fig, f"Model versions: candidate {metric} (green promoted, red rejected, ringed = served)",
                  legend=LEGEND_BELOW, xaxis_title="trained at", yaxis_title=metric)


def curves_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The simulation report as rows: arm, round, metric, value, lo, hi (95% interval)."""
    rows = []
    arms = report.get("arms") or {"retrain": {"rounds": report.get("rounds", [])},
                                  "static": report.get("control", {})}
    for arm, body in arms.items():
        for r in body.get("rounds", []):
            for metric in ("like_rate", "ndcg@10", "ndcg@10_loved"):
                if metric not in r:
                    continue
                lo, hi = (r.get(f"{metric}_ci") or [None, None])[:2]
                rows.append({"arm": arm, "round": int(r["round"]), "metric": metric, "value": r[metric],
                             "lo": lo, "hi": hi, "promoted": r.get("promoted")})
    return pd.DataFrame(rows, columns=["arm", "round", "metric", "value", "lo", "hi", "promoted"]).astype(
        {"value": float, "lo": float, "hi": float})


def learning_curves_figure(curves: pd.DataFrame, metric: str = "like_rate") -> go.Figure:
    """Per-round mean of `metric` for every arm with its 95% interval as a band; rejected retrains marked."""
    fig = go.Figure()
    data = curves[curves["metric"] == metric]
    for n, (arm, group) in enumerate(data.groupby("arm", sort=False)):
        group = group.sort_values("round")
        color = PALETTE[n % len(PALETTE)]
        label = html.escape(ARM_LABELS.get(arm, str(arm)))
        fig.add_trace(go.Scatter(x=np.concatenate([group["round"], group["round"][::-1]]),
                                 y=np.concatenate([group["hi"], group["lo"][::-1]]), fill="toself",
                                 fillcolor=color, opacity=0.2, line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, name=f"{label} 95%"))
        symbols = ["x" if p is False else "circle" for p in group["promoted"]]
        fig.add_trace(go.Scatter(x=group["round"], y=group["value"], mode="lines+markers", name=label,
                                 line=dict(color=color), marker=dict(symbol=symbols, size=9)))
    title = {"like_rate": "Like rate per round", "ndcg@10": "NDCG@10 on truth not yet revealed",
             "ndcg@10_loved": "NDCG@10 on loved (4-5) truth not yet revealed"}.get(metric, metric)
    return layout(fig, f"{title} (bands: 95% intervals; x: gate rejected the retrain)", legend=LEGEND_BELOW,
                  xaxis_title="round", yaxis_title=metric)


def ips_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per candidate of the report's IPS check: candidate, truth, ips, snips, ips_lo/hi, snips_lo/hi,
    support."""
    rows = []
    for name, c in ((report.get("ips") or {}).get("candidates") or {}).items():
        rows.append({"candidate": name, "truth": c["truth"], "ips": c["ips"], "snips": c["snips"],
                     "ips_lo": c["ips_ci"][0], "ips_hi": c["ips_ci"][1], "snips_lo": c["snips_ci"][0],
                     "snips_hi": c["snips_ci"][1], "support": c["support"]})
    return pd.DataFrame(rows, columns=["candidate", "truth", "ips", "snips", "ips_lo", "ips_hi", "snips_lo",
                                       "snips_hi", "support"])


def ips_figure(frame: pd.DataFrame) -> go.Figure:
    """IPS and SNIPS (with 95% bootstrap intervals) next to the simulated truth, per candidate."""
    names = plain(frame["candidate"])
    labels = [f"{n}<br>support {s:.0%}" for n, s in zip(names, frame["support"])]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=frame["truth"], name="simulated truth", marker_color="#444444"))
    for col, color in (("ips", PALETTE[0]), ("snips", PALETTE[1])):
        fig.add_trace(go.Bar(x=labels, y=frame[col], name=col.upper(), marker_color=color,
                             error_y=dict(type="data", symmetric=False, array=frame[f"{col}_hi"] - frame[col],
                                          arrayminus=frame[col] - frame[f"{col}_lo"])))
    return layout(fig, "Counterfactual like rate vs simulated truth", legend=LEGEND_BELOW, barmode="group",
                  yaxis_title="like rate per shown item")
