"""The dashboard's data: one read of the store into plain DataFrames (`load_frames`), and the sidebar
filters applied to them in memory (`apply_filters`).

Loading is the only part that touches the database; the Streamlit script caches it (`st.cache_data(ttl=...)`),
so moving a filter never re-queries: filtering a million events in pandas takes tens of milliseconds.
Column contracts are the store's (`annotation.frames`), plus the few derived here (documented on `Frames`).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from annotation import store
from annotation.db import make_session_factory
from annotation.models import Item

POSITIVE_KINDS = ("click", "like", "rating")  # events that count towards an item's popularity (novelty)


def _style(personalized: pd.Series, params: pd.Series) -> pd.Series:
    """The prompt style of an asset: "generic", or "personalized α=<alpha>" from its recorded params."""
    alpha = params.map(lambda p: p.get("alpha") if isinstance(p, dict) else None)
    return pd.Series(
        [f"personalized α={a:g}" if per and isinstance(a, (int, float)) else ("personalized" if per else "generic")
         for per, a in zip(personalized.astype(bool), alpha)],
        index=personalized.index, dtype="object",
    )


@dataclass(frozen=True)
class Frames:
    """Everything the pages draw from.

    impressions, feedback, assets, labels, eval_runs: the store's frames (`annotation.frames`), where
        `labels` holds current labels only; `assets` gains `style` (generic / personalized α=...) and `source`
        (fallback / model); `eval_runs` gains `metrics` (dict of the run's non-missing metric columns).
    asset_index: every asset ever generated (asset_id, kind, generator, personalized, fallback, style, source),
        never date-filtered, so that a label in range can always look up its two assets.
    items: the catalog (item_id, title, genres).
    popularity: item_id -> positive events over all time (for novelty).
    """

    impressions: pd.DataFrame
    feedback: pd.DataFrame
    assets: pd.DataFrame
    labels: pd.DataFrame
    eval_runs: pd.DataFrame
    items: pd.DataFrame
    asset_index: pd.DataFrame
    popularity: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))

    @property
    def is_empty(self) -> bool:
        return all(len(f) == 0 for f in (self.impressions, self.feedback, self.assets, self.labels, self.eval_runs))

    def date_bounds(self) -> tuple[dt.date, dt.date] | None:
        """First and last day with any activity, or None."""
        parts = [f["created_at"] for f in (self.impressions, self.feedback, self.assets, self.labels, self.eval_runs)
                 if len(f)]
        times = pd.concat(parts).dropna() if parts else pd.Series(dtype="datetime64[ns]")
        if times.empty:
            return None
        return times.min().date(), times.max().date()

    def models(self) -> list[str]:
        names = pd.concat([self.impressions["model"], self.impressions["model_b"]]).dropna().unique()
        return sorted(set(map(str, names)) | set(map(str, self.eval_runs["model"].dropna().unique())))

    def generators(self) -> list[str]:
        return sorted(map(str, self.asset_index["generator"].dropna().unique()))

    def annotators(self) -> list[str]:
        return sorted(map(str, self.labels["annotator"].dropna().unique()))


def load_frames(engine: Engine) -> Frames:
    """Read everything the dashboard shows, in one read-only session."""
    Session = make_session_factory(engine, read_only=True)
    with Session() as s, s.begin():
        impressions = store.impressions_frame(s)
        feedback = store.feedback_frame(s)
        assets = store.assets_frame(s)
        labels = store.preferences_frame(s)
        eval_runs = store.eval_runs_frame(s)
        items = pd.DataFrame.from_records(s.execute(select(Item.item_id, Item.title, Item.genres)).all(),
                                          columns=["item_id", "title", "genres"])
    assets = assets.assign(style=_style(assets["personalized"], assets["params"]),
                           source=np.where(assets["fallback"].astype(bool), "fallback", "model"))
    fixed = {"run_id", "model", "dataset", "split", "created_at", "config"}
    metric_columns = [c for c in eval_runs.columns if c not in fixed]
    eval_runs = eval_runs.assign(metrics=[
        {k: float(v) for k, v in zip(metric_columns, row) if pd.notna(v)}
        for row in eval_runs[metric_columns].itertuples(index=False, name=None)
    ] if len(eval_runs) else pd.Series(dtype="object"))
    positive = feedback.loc[feedback["kind"].isin(POSITIVE_KINDS), "item_id"]
    return Frames(
        impressions=impressions, feedback=feedback, assets=assets, labels=labels, eval_runs=eval_runs, items=items,
        asset_index=assets[["asset_id", "kind", "generator", "personalized", "fallback", "style", "source"]],
        popularity=positive.value_counts(),
    )


@dataclass(frozen=True)
class Filters:
    """The sidebar's filters; an empty tuple means "all"."""

    start: dt.date | None = None  # first day included
    end: dt.date | None = None  # last day included
    models: tuple[str, ...] = ()
    generators: tuple[str, ...] = ()
    annotators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end must be on or after start, got start={self.start} end={self.end}")


def _in_range(frame: pd.DataFrame, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    if start is None and end is None or frame.empty:
        return frame
    t = frame["created_at"]
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= t >= pd.Timestamp(start)
    if end is not None:
        keep &= t < pd.Timestamp(end) + pd.Timedelta(days=1)
    return frame.loc[keep]


def apply_filters(frames: Frames, filters: Filters) -> Frames:
    """The frames restricted to the date range, models, generators and annotators chosen.

    Models filter slates (either side of an interleaved pair), their feedback (events without a slate cannot
    be attributed and drop out) and evaluation runs; generators filter assets and the labels where either side
    came from one of them; annotators filter labels.
    """
    impressions = _in_range(frames.impressions, filters.start, filters.end)
    feedback = _in_range(frames.feedback, filters.start, filters.end)
    assets = _in_range(frames.assets, filters.start, filters.end)
    labels = _in_range(frames.labels, filters.start, filters.end)
    eval_runs = _in_range(frames.eval_runs, filters.start, filters.end)
    if filters.models:
        chosen = list(filters.models)
        impressions = impressions[impressions["model"].isin(chosen) | impressions["model_b"].isin(chosen)]
        feedback = feedback[feedback["model"].isin(chosen) | feedback["model_b"].isin(chosen)]
        eval_runs = eval_runs[eval_runs["model"].isin(chosen)]
    if filters.generators:
        chosen = list(filters.generators)
        assets = assets[assets["generator"].isin(chosen)]
        labels = labels[labels["generator_a"].isin(chosen) | labels["generator_b"].isin(chosen)]
    if filters.annotators:
        labels = labels[labels["annotator"].isin(list(filters.annotators))]
    return replace(frames, impressions=impressions, feedback=feedback, assets=assets, labels=labels,
                   eval_runs=eval_runs)


EXPORT_FORMATS = ("jsonl", "parquet")


def export_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """The frame as JSON Lines (ISO dates) or Parquet bytes (lists and dicts kept as nested types)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {list(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, date_format="iso").encode()
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
