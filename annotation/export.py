"""Exports: feedback, preference pairs, generated assets and training interactions as JSONL or Parquet.

    python -m annotation export --what preferences --format parquet --out prefs.parquet
    datasets.load_dataset("parquet", data_files="prefs.parquet")

Preferences come out in a Pick-a-Pic-like shape, one row per current A/B/tie label on a pair of generated
assets (skips, cleared labels and slate pairs are left out): prompt, image_0, image_1, label_0, label_1,
annotator, ... where image_i is the cover's file path (covers) or the caption text (captions), label_0/label_1
is 1/0, 0/1 or 0.5/0.5 for a tie. Files are written to a temporary name and renamed, so a crash never leaves a
half-written export under the final name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from annotation import frames
from annotation.errors import InvalidInputError

__all__ = ["export", "preference_pairs", "WHAT", "FORMATS"]

WHAT = ("feedback", "preferences", "assets", "interactions")
FORMATS = ("jsonl", "parquet")

PAIR_COLUMNS = [
    "pair_id", "label_id", "event_id", "kind", "prompt", "prompt_0", "prompt_1", "image_0", "image_1",
    "image_0_uid", "image_1_uid", "model_0", "model_1", "fallback_0", "fallback_1", "personalized_0",
    "personalized_1", "label_0", "label_1", "choice", "best_image_uid", "are_different", "has_label", "annotator",
    "annotator_id", "user_id", "item_id", "time_spent_ms", "guideline_version", "created_at",
]
_LABELS = {"A": (1.0, 0.0), "B": (0.0, 1.0), "tie": (0.5, 0.5)}


def preference_pairs(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                     ) -> pd.DataFrame:
    """Current A/B/tie labels on asset pairs, in the Pick-a-Pic-like shape described above (PAIR_COLUMNS)."""
    prefs = frames.preferences_frame(session, since=since, until=until)
    prefs = prefs[prefs["choice"].isin(list(_LABELS)) & prefs["asset_a_id"].notna()]
    out = pd.DataFrame(index=prefs.index)
    out["pair_id"] = prefs["pair_id"].astype("int64")
    out["label_id"] = prefs["label_id"].astype("int64")
    out["event_id"] = prefs["event_id"]
    out["kind"] = prefs["kind"]
    out["prompt"] = prefs["prompt_a"]
    out["prompt_0"], out["prompt_1"] = prefs["prompt_a"], prefs["prompt_b"]
    is_cover = prefs["kind"] == "cover"
    out["image_0"] = prefs["path_a"].where(is_cover, prefs["text_a"])
    out["image_1"] = prefs["path_b"].where(is_cover, prefs["text_b"])
    out["image_0_uid"] = prefs["asset_a_id"].astype("int64").astype(str)
    out["image_1_uid"] = prefs["asset_b_id"].astype("int64").astype(str)
    out["model_0"], out["model_1"] = prefs["generator_a"], prefs["generator_b"]
    out["fallback_0"], out["fallback_1"] = prefs["fallback_a"].astype(bool), prefs["fallback_b"].astype(bool)
    out["personalized_0"] = prefs["personalized_a"].astype(bool)
    out["personalized_1"] = prefs["personalized_b"].astype(bool)
    out["label_0"] = prefs["choice"].map(lambda c: _LABELS[c][0]).astype("float64")
    out["label_1"] = prefs["choice"].map(lambda c: _LABELS[c][1]).astype("float64")
    out["choice"] = prefs["choice"]
    out["best_image_uid"] = out["image_0_uid"].where(prefs["choice"] == "A", out["image_1_uid"])
    out.loc[prefs["choice"] == "tie", "best_image_uid"] = ""
    out["are_different"] = True  # create_pair refuses a pair of one asset with itself
    out["has_label"] = True
    out["annotator"] = prefs["annotator"]
    out["annotator_id"] = prefs["annotator_id"].astype("int64")
    out["user_id"] = prefs["target_user_id"]
    out["item_id"] = prefs["item_id_a"]
    out["time_spent_ms"] = prefs["time_spent_ms"].astype("Int64")
    out["guideline_version"] = prefs["guideline_version"]
    out["created_at"] = prefs["created_at"]
    return out[PAIR_COLUMNS].reset_index(drop=True)


def _table(session: Session, what: str, since, until) -> pd.DataFrame:
    if what == "feedback":
        frame = frames.feedback_frame(session, since=since, until=until)
        for column in ("impression_id", "position"):
            frame[column] = frame[column].astype("Int64")
        return frame
    if what == "preferences":
        return preference_pairs(session, since=since, until=until)
    if what == "assets":
        frame = frames.assets_frame(session, since=since, until=until)
        frame["params"] = frame["params"].map(lambda p: json.dumps(p, sort_keys=True))  # one string column
        frame["seed"] = frame["seed"].astype("Int64")
        return frame
    return frames.interactions_frame(session, since=since, until=until)


def export(session: Session, what: str, fmt: str, out: str | os.PathLike, since: dt.datetime | None = None,
           until: dt.datetime | None = None) -> int:
    """Write the `what` table ("feedback" | "preferences" | "assets" | "interactions") to `out` as `fmt`
    ("jsonl" | "parquet"); returns the number of rows. Parent folders are created."""
    if what not in WHAT:
        raise InvalidInputError(f"what must be one of {', '.join(WHAT)}, got {what!r}")
    if fmt not in FORMATS:
        raise InvalidInputError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise InvalidInputError(f"out must be a file path, got the folder {str(out)!r}")
    frame = _table(session, what, since, until)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "jsonl":
            text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
            tmp.write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frame)
