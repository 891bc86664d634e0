"""The Studies page's helpers: each labeling study's progress, agreement, its participants' reliability and the
preference model's learning curve; and the reliability of every annotator (the Annotators page shows it too).

Pure functions over the dashboard's frames (`app.dashboard.data.Frames`): studies (`annotation.studies.
studies_frame`), participants (`participants_frame`), labels (`preferences_frame`, with study_id), annotators
(`annotators_frame`, with reliability and flag) and evaluation runs (the preference model's versions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from annotation import analytics as an
from app.dashboard.charts import PALETTE, View, layout, pct, plain
from app.dashboard.data import Frames

__all__ = ["studies_table", "study_progress_view", "study_agreement_view", "reliability_view", "learning_curve_view",
           "REWARD_MODEL"]

REWARD_MODEL = "reward"  # the preference model's name in the registry and in eval_runs
NO_STUDY = "No study yet: an admin creates one on the app's Studies tab (it needs the admin password)."


def studies_table(frames: Frames) -> pd.DataFrame:
    """One row per study: name, key, pairs, quota, gold rate, participants, completed, labels, created."""
    st = frames.studies
    if st.empty:
        return pd.DataFrame(columns=["study_id", "name", "key", "pairs", "quota", "gold rate", "participants",
                                     "completed", "labels", "created"])
    return pd.DataFrame({"study_id": st["study_id"], "name": st["name"], "key": st["key"],
                         "pairs": st["pair_source"], "quota": st["labels_per_annotator"], "gold rate": st["gold_rate"],
                         "participants": st["participants"], "completed": st["completed"], "labels": st["labels"],
                         "created": st["created_at"]})


def _participants(frames: Frames, study_id: int) -> pd.DataFrame:
    people = frames.participants
    return people[people["study_id"] == study_id] if not people.empty else people


def study_progress_view(frames: Frames, study_id: int) -> View:
    """Labels given by each participant against the quota, and how many finished."""
    people = _participants(frames, study_id)
    if people.empty:
        return View(empty="Nobody has followed this study's link yet.")
    quota = int(people["quota"].iloc[0])
    shown = people.assign(participant=plain(people["external_id"]),
                          status=np.where(people["completed"], "done", np.where(people["flagged"], "flagged",
                                                                                "labeling")))
    fig = px.bar(shown, x="participant", y="labels", color="status", color_discrete_sequence=PALETTE,
                 labels={"participant": "", "labels": "labels given"},
                 category_orders={"status": ["done", "labeling", "flagged"]})
    fig.add_hline(y=quota, line_dash="dot", annotation_text=f"quota {quota}")
    fig = layout(fig, title="Labels per participant")
    done = int(people["completed"].sum())
    median_s = people["median_ms"].median() / 1000 if people["median_ms"].notna().any() else float("nan")
    reading = (f"{done} of {len(people)} participants finished their {quota} labels; "
               f"{int(people['labels'].sum()):,} labels in all")
    if np.isfinite(median_s):
        reading += f"; the median participant takes {median_s:.1f} s per label"
    table = people[["external_id", "annotator", "labels", "quota", "completed", "median_ms", "reliability",
                    "flagged", "started_at", "last_label_at"]]
    return View(figure=fig, table=table.reset_index(drop=True), reading=reading + ".")


def study_agreement_view(frames: Frames, study_id: int) -> View:
    """Agreement among the study's participants on the pairs several of them labelled."""
    labels = frames.labels
    if labels.empty or "study_id" not in labels:
        return View(empty="No label in this study yet.")
    mine = labels[labels["study_id"] == study_id]
    data = mine.rename(columns={"pair_id": "item_id", "choice": "label"})[["item_id", "annotator", "label"]]
    pairwise = an.pairwise_cohen_kappa(data, min_overlap=2) if not data.empty else pd.DataFrame()
    if pairwise.empty:
        return View(empty="No pair of this study has been labelled by two participants yet (agreement needs "
                          "overlap: VITRINE_LABEL_OVERLAP >= 2).")
    fleiss, alpha = an.fleiss_kappa(data), an.krippendorff_alpha(data)
    per = an.annotator_agreement(data)
    reading = (f"Fleiss' κ = {fleiss['kappa']:.2f} over {fleiss['items']:,} pairs, Krippendorff's α = {alpha:.2f}; "
               f"{per.iloc[0]['annotator']} agrees most with the others ({pct(per.iloc[0]['agreement'])}), "
               f"{per.iloc[-1]['annotator']} least ({pct(per.iloc[-1]['agreement'])}).")
    return View(table=per, reading=reading, extra={"fleiss": fleiss, "alpha": alpha})


def reliability_view(frames: Frames, threshold: float, study_id: int | None = None) -> View:
    """Each annotator's estimated reliability (the probability of choosing the better side, from gold pairs and
    overlaps), the threshold, and who is flagged; only the study's participants when `study_id` is given."""
    people = frames.annotator_table
    if study_id is not None:
        ids = set(_participants(frames, study_id)["annotator_id"]) if not frames.participants.empty else set()
        people = people[people["annotator_id"].isin(ids)] if not people.empty else people
    if people.empty or people["reliability"].isna().all():
        return View(empty="No reliability estimated yet: it needs gold pairs or pairs labelled by two annotators "
                          "(the app estimates it as labels arrive, and before each preference-model training).")
    known = people[people["reliability"].notna()].sort_values("reliability")
    shown = known.assign(annotator=plain(known["name"]), status=np.where(known["flagged"], "flagged", "ok"))
    fig = px.bar(shown, y="annotator", x="reliability", color="status", orientation="h",
                 color_discrete_map={"ok": PALETTE[0], "flagged": "#cc3311"},
                 hover_data={"reliability_labels": True}, labels={"annotator": "", "reliability": "reliability"})
    fig.add_vline(x=threshold, line_dash="dot", annotation_text=f"threshold {threshold:g}")
    fig.add_vline(x=0.5, line_color="#999999", annotation_text="chance")
    fig.update_xaxes(range=[0, 1])
    fig = layout(fig, height=max(240, 34 * len(shown) + 140), title="Estimated reliability")
    flagged = known[known["flagged"]]
    reading = (f"Flagged (reliability below {threshold:g}, handed no more pairs): "
               + ", ".join(f"{r.name} ({r.reliability:.2f})" for r in flagged.itertuples())
               if len(flagged) else f"No annotator is below the threshold {threshold:g}.")
    table = known[["name", "reliability", "reliability_labels", "flagged", "n_labels", "median_time_ms"]]
    return View(figure=fig, table=table.reset_index(drop=True), reading=reading)


def learning_curve_frame(eval_runs: pd.DataFrame, model: str = REWARD_MODEL) -> pd.DataFrame:
    """labels (pairs trained on), heldout_accuracy, created_at: one row per preference-model version evaluated."""
    needed = {"model", "created_at"}
    if eval_runs.empty or not needed <= set(eval_runs.columns) or "heldout_accuracy" not in eval_runs:
        return pd.DataFrame(columns=["labels", "heldout_accuracy", "created_at"])
    runs = eval_runs[(eval_runs["model"] == model) & eval_runs["heldout_accuracy"].notna()]
    if "n_pairs" not in runs:
        return pd.DataFrame(columns=["labels", "heldout_accuracy", "created_at"])
    runs = runs[runs["n_pairs"].notna()]
    out = pd.DataFrame({"labels": runs["n_pairs"].astype("int64"), "heldout_accuracy": runs["heldout_accuracy"],
                        "created_at": runs["created_at"]})
    return out.sort_values(["labels", "created_at"], kind="stable").reset_index(drop=True)


def learning_curve_view(frames: Frames) -> View:
    """The preference model's held-out pair accuracy against the number of labelled pairs it was trained on."""
    curve = learning_curve_frame(frames.eval_runs)
    if curve.empty:
        return View(empty="No preference-model version trained yet: Retrain → preference model on the app's Status "
                          "tab (or VITRINE_REWARD_EVERY_LABELS).")
    fig = go.Figure(go.Scatter(x=curve["labels"], y=curve["heldout_accuracy"], mode="lines+markers",
                               line=dict(color=PALETTE[1])))
    fig.add_hline(y=0.5, line_color="#999999", annotation_text="chance")
    fig.update_xaxes(title="labelled pairs trained on")
    fig.update_yaxes(title="held-out pair accuracy", range=[0, 1])
    fig = layout(fig, title="The preference model's learning curve")
    last = curve.iloc[-1]
    return View(figure=fig, table=curve, reading=f"Latest version: {last['heldout_accuracy']:.3f} held-out pair "
                                                 f"accuracy after {int(last['labels']):,} pairs.")
