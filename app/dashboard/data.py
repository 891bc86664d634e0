"""The dashboard's data: what the pages draw, read from the store for one date window (`load_frames`), and the
sidebar's other filters applied to it in memory (`apply_filters`).

Built for millions of events: nothing reads every feedback event or every slate position into pandas.
The event streams arrive aggregated in SQL (per day and model, per user-day, per item, per model and kind
through `store.model_feedback_rates`); only the clicks on interleaved slates, a sample of the most recent
slates (for coverage, novelty and diversity) and the small tables (labels, assets, evaluation runs, the
catalog) come as rows. The Streamlit script caches `load_frames` per (database, window) with
`st.cache_data(ttl=...)`, so moving the model, generator or annotator filters never re-queries.

Column contracts are documented on `Frames`; the store's frames are documented in `annotation.frames`.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from annotation import activity, store, studies
from annotation.db import make_session_factory

RATE_KINDS = ("click", "like")
SLATE_SAMPLE = 10_000  # most recent single-model slates of the window behind coverage, novelty and diversity
EXPORT_TABLES = ("feedback", "impressions", "labels", "assets", "eval_runs")
EXPORT_FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class Filters:
    """The sidebar's filters; an empty tuple means "all". The date window is applied in SQL by `load_frames`."""

    start: dt.date | None = None  # first day included
    end: dt.date | None = None  # last day included
    models: tuple[str, ...] = ()
    generators: tuple[str, ...] = ()
    annotators: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end must be on or after start, got start={self.start} end={self.end}")

    def window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(since, until) for the store: since <= created_at < until (the end day is included)."""
        since = dt.datetime.combine(self.start, dt.time()) if self.start else None
        until = dt.datetime.combine(self.end, dt.time()) + dt.timedelta(days=1) if self.end else None
        return since, until


@dataclass(frozen=True)
class Frames:
    """Everything the pages draw, for one date window.

    daily: day (datetime64), series ("feedback events" | "slates shown"), model (the credited model of feedback,
        the slate's model A for slates; None for feedback without a slate), model_b (slates: model B when
        interleaved), count.
    user_days: day, user_id: a user saw a slate or gave feedback that day.
    rates: model, kind (click | like), trials (items shown, credited to the model that placed them),
        successes (distinct slate items that got that kind) — `annotation.frames.model_feedback_rates`.
    interleaved_clicks: impression_id, model, model_b, item_id, kind, contributor: clicks on interleaved slates.
    slates: model, item_ids (list): the SLATE_SAMPLE most recent single-model slates of the window (coverage,
        novelty and diversity are measured on them: all slates, when there are fewer).
    labels: current preference labels (`preferences_frame`); assets: generated assets (`assets_frame`), plus
        `style` (generic / personalized α=...) and `source` (fallback / model); eval_runs: `eval_runs_frame`
        plus `metrics` (dict of the run's non-missing metric columns).
    asset_index: every asset ever generated (asset_id, kind, generator, personalized, fallback, style, source),
        never windowed, so that a label in range can always look up its two assets.
    items: the sampled slates' items (item_id, title, genres); catalog_size: how many items the catalog has.
    popularity: item_id -> feedback events of any kind, all time, of those items; popularity_total: of all items.
    Nothing here is read per item of the whole catalog.
    annotator_table: `annotators_frame` (with each one's estimated reliability and flag). studies: `studies_frame`;
    participants: `participants_frame` (every study's, all time: a study's progress is not windowed).
    """

    daily: pd.DataFrame
    user_days: pd.DataFrame
    rates: pd.DataFrame
    interleaved_clicks: pd.DataFrame
    slates: pd.DataFrame
    labels: pd.DataFrame
    assets: pd.DataFrame
    eval_runs: pd.DataFrame
    asset_index: pd.DataFrame
    items: pd.DataFrame
    popularity: pd.Series
    catalog_size: int = 0
    popularity_total: int = 0
    annotator_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    studies: pd.DataFrame = field(default_factory=pd.DataFrame)
    participants: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def is_empty(self) -> bool:
        return all(len(f) == 0 for f in (self.daily, self.labels, self.assets, self.eval_runs))

    def models(self) -> list[str]:
        names = pd.concat([self.daily["model"], self.daily["model_b"], self.eval_runs["model"]]).dropna().unique()
        return sorted(map(str, names))

    def generators(self) -> list[str]:
        return sorted(map(str, self.asset_index["generator"].dropna().unique()))

    def annotators(self) -> list[str]:
        return sorted(map(str, self.labels["annotator"].dropna().unique()))


# ---------------------------------------------------------------------------------------------- reading
def _style(personalized: pd.Series, params: pd.Series) -> pd.Series:
    """The prompt style of an asset: "generic", or "personalized α=<alpha>" from its recorded params."""
    alpha = params.map(lambda p: p.get("alpha") if isinstance(p, dict) else None)
    return pd.Series(
        [f"personalized α={a:g}" if per and isinstance(a, (int, float)) else ("personalized" if per else "generic")
         for per, a in zip(personalized.astype(bool), alpha)],
        index=personalized.index, dtype="object",
    )


def date_bounds(engine: Engine) -> tuple[dt.date, dt.date] | None:
    """First and last day with any activity, or None for an empty database."""
    Session = make_session_factory(engine, read_only=True)
    with Session() as s, s.begin():
        found = activity.activity_times(s)
    times = pd.to_datetime(pd.Series([t for t in found if t is not None]), format="ISO8601")
    if times.empty:
        return None
    return times.min().date(), times.max().date()


def load_frames(engine: Engine, start: dt.date | None = None, end: dt.date | None = None) -> Frames:
    """Read what the dashboard shows for the days start..end (both included; None = unbounded)."""
    since, until = Filters(start=start, end=end).window()
    Session = make_session_factory(engine, read_only=True)
    with Session() as s, s.begin():
        raw = activity.activity_rows(s, since, until, slate_sample=SLATE_SAMPLE)
        rates = store.model_feedback_rates(s, since, until, kinds=RATE_KINDS)
        labels = store.preferences_frame(s, since, until)
        assets = store.assets_frame(s, since, until)
        eval_runs = store.eval_runs_frame(s, since, until)
        annotators = store.annotators_frame(s, since, until)
        study_rows, participants = studies.studies_frame(s), studies.participants_frame(s)
    feedback_daily, slates_daily, user_days = raw["feedback_daily"], raw["slates_daily"], raw["user_days"]
    clicks = raw["interleaved_feedback"]
    interleaved_clicks = clicks[clicks["kind"] == "click"].merge(raw["interleaved"], on="impression_id", how="inner")[
        ["impression_id", "model", "model_b", "item_id", "kind", "contributor"]]
    sample, popularity, index, items = raw["slate_sample"], raw["popularity"], raw["asset_index"], raw["items"]

    for frame in (feedback_daily, slates_daily, user_days):
        frame["day"] = pd.to_datetime(frame["day"].astype(str)) if len(frame) else pd.Series(dtype="datetime64[ns]")
    daily = pd.concat([feedback_daily.assign(series="feedback events", model_b=None),
                       slates_daily.assign(series="slates shown")], ignore_index=True)
    daily["count"] = daily["count"].astype("int64")
    slates = (sample.groupby("impression_id", sort=False).agg(model=("model", "first"), item_ids=("item_id", list))
              .reset_index(drop=True) if len(sample) else pd.DataFrame({"model": [], "item_ids": []}))
    index = index.astype({"personalized": bool, "fallback": bool}) if len(index) else index
    for frame in (assets, index):
        frame["style"] = _style(frame["personalized"], frame["params"])
        frame["source"] = np.where(frame["fallback"].astype(bool), "fallback", "model")
    fixed = {"run_id", "model", "dataset", "split", "created_at", "config"}
    metric_columns = [c for c in eval_runs.columns if c not in fixed]
    eval_runs = eval_runs.assign(metrics=[
        {k: float(v) for k, v in zip(metric_columns, row) if pd.notna(v)}
        for row in eval_runs[metric_columns].itertuples(index=False, name=None)
    ] if len(eval_runs) else pd.Series(dtype="object"))
    return Frames(
        daily=daily[["day", "series", "model", "model_b", "count"]], user_days=user_days, rates=rates,
        interleaved_clicks=interleaved_clicks, slates=slates, labels=labels, assets=assets,
        eval_runs=eval_runs, asset_index=index.drop(columns="params"), items=items,
        popularity=pd.Series(popularity["count"].astype("int64").to_numpy(), index=popularity["item_id"].astype(str),
                             dtype="int64"),
        catalog_size=int(raw["catalog"]["n"].iloc[0]), popularity_total=int(raw["feedback_total"]["n"].iloc[0]),
        annotator_table=annotators, studies=study_rows, participants=participants,
    )


# -------------------------------------------------------------------------------------------- filtering
def _either(frame: pd.DataFrame, chosen: list[str], a: str = "model", b: str = "model_b") -> pd.Series:
    return frame[a].isin(chosen) | frame[b].isin(chosen)


def apply_filters(frames: Frames, filters: Filters) -> Frames:
    """The frames restricted to the models, generators and annotators chosen (the window is `load_frames`').

    Models filter what they are credited with (feedback, shown items, rates), the slates where they are either
    side of an interleaved pair, and evaluation runs; generators filter assets and the labels where either side
    came from one of them; annotators filter labels.
    """
    out = frames
    if filters.models:
        chosen = list(filters.models)
        daily = frames.daily
        keep = np.where(daily["series"] == "slates shown", _either(daily, chosen), daily["model"].isin(chosen))
        out = replace(
            out, daily=daily[keep], rates=frames.rates[frames.rates["model"].isin(chosen)],
            interleaved_clicks=frames.interleaved_clicks[_either(frames.interleaved_clicks, chosen)],
            slates=frames.slates[frames.slates["model"].isin(chosen)],
            eval_runs=frames.eval_runs[frames.eval_runs["model"].isin(chosen)],
        )
    if filters.generators:
        chosen = list(filters.generators)
        out = replace(out, assets=out.assets[out.assets["generator"].isin(chosen)],
                      labels=out.labels[_either(out.labels, chosen, "generator_a", "generator_b")])
    if filters.annotators:
        out = replace(out, labels=out.labels[out.labels["annotator"].isin(list(filters.annotators))])
    return out


# ---------------------------------------------------------------------------------------------- exports
def export_frame(engine: Engine, table: str, filters: Filters) -> pd.DataFrame:
    """The rows of `table` (one of EXPORT_TABLES) that the filters select, read when a download is asked for."""
    if table not in EXPORT_TABLES:
        raise ValueError(f"table must be one of {list(EXPORT_TABLES)}, got {table!r}")
    since, until = filters.window()
    Session = make_session_factory(engine, read_only=True)
    with Session() as s, s.begin():
        read = {"feedback": store.feedback_frame, "impressions": store.impressions_frame,
                "labels": store.preferences_frame, "assets": store.assets_frame, "eval_runs": store.eval_runs_frame}
        frame = read[table](s, since, until)
    if filters.models and table in ("feedback", "impressions", "eval_runs"):
        chosen = list(filters.models)
        frame = frame[frame["model"].isin(chosen) | (frame["model_b"].isin(chosen) if "model_b" in frame else False)]
    if table == "labels":
        if filters.generators:
            frame = frame[_either(frame, list(filters.generators), "generator_a", "generator_b")]
        if filters.annotators:
            frame = frame[frame["annotator"].isin(list(filters.annotators))]
    if table == "assets" and filters.generators:
        frame = frame[frame["generator"].isin(list(filters.generators))]
    return frame.reset_index(drop=True)


def export_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """The frame as JSON Lines (ISO dates) or Parquet bytes (lists and dicts kept as nested types)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {list(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, date_format="iso").encode()
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
