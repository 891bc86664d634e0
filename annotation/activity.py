"""The dashboard's reads: activity aggregated in SQL for one date window, built for millions of events.

Nothing here reads every feedback event or every slate position into pandas: the event streams arrive
aggregated per day and model, per user-day and per item; only the clicks on interleaved slates and a sample of
the most recent slates come as rows. Every function takes `session` first and only reads; `since` / `until`
keep rows with since <= created_at < until (None = unbounded). Pure analytics live in `annotation.analytics`.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from annotation.models import EvalRun, FeedbackEvent, GeneratedAsset, Impression, ImpressionItem, Item, PreferenceLabel

__all__ = ["activity_times", "activity_rows", "ID_CHUNK"]

ID_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


def _rows(session: Session, statement, columns: list[str]) -> pd.DataFrame:
    rows = session.connection().execute(statement).all()
    values = list(zip(*rows)) if rows else [()] * len(columns)
    return pd.DataFrame({name: pd.Series(list(col), dtype=object) for name, col in zip(columns, values)})


def _window(statement, column, since, until):
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column < until)
    return statement


def _day(column):
    return func.date(column)  # 'YYYY-MM-DD' on SQLite, a date on PostgreSQL: pandas parses both


def activity_times(session: Session) -> list[object]:
    """The first and last created_at of each activity table (indexed MIN/MAX), None where a table is empty."""
    columns = (FeedbackEvent.created_at, Impression.created_at, PreferenceLabel.created_at, GeneratedAsset.created_at,
               EvalRun.created_at)
    found = [session.execute(select(func.min(c), func.max(c))).one() for c in columns]
    return [t for pair in found for t in pair]


def activity_rows(session: Session, since: dt.datetime | None, until: dt.datetime | None,
                  slate_sample: int) -> dict[str, pd.DataFrame]:
    """The raw frames behind the dashboard's activity pages, for one window:

    feedback_daily: day, model, count · slates_daily: day, model, model_b, count · user_days: day, user_id ·
    interleaved: impression_id, model, model_b (interleaved slates) · interleaved_feedback: impression_id,
    item_id, kind, contributor (their feedback) · slate_sample: model, impression_id, item_id (the `slate_sample`
    most recent single-model slates, by position) · popularity: item_id, count (events of any kind, all time, of
    the sampled slates' items only) · feedback_total: n (events of any kind, all time) · asset_index: asset_id, kind,
    generator, personalized, fallback, params (every asset, never windowed) · items: item_id, title, genres (of the
    sampled slates' items only) · catalog: n (items in the catalog). Nothing per item is read for the whole
    catalog: a million-item catalog costs the dashboard what a thousand-item one does.
    """
    F, I, S = FeedbackEvent, Impression, ImpressionItem
    out: dict[str, pd.DataFrame] = {}
    day = _day(F.created_at).label("day")
    out["feedback_daily"] = _rows(session, _window(select(day, F.model, func.count()).group_by(day, F.model),
                                                   F.created_at, since, until), ["day", "model", "count"])
    day = _day(I.created_at).label("day")
    out["slates_daily"] = _rows(session, _window(
        select(day, I.model, I.model_b, func.count()).group_by(day, I.model, I.model_b), I.created_at, since, until),
        ["day", "model", "model_b", "count"])
    out["user_days"] = _rows(session, union(
        _window(select(_day(F.created_at), F.user_id), F.created_at, since, until),
        _window(select(_day(I.created_at), I.user_id), I.created_at, since, until),
    ), ["day", "user_id"])
    # From the interleaved slates to their feedback through feedback's impression_id index, a chunk of slates
    # at a time: with the kind (or a join) in the statement SQLite walks every click of the database by the
    # (kind, created_at) index instead.
    inter = _rows(session, _window(select(I.id, I.model, I.model_b).where(I.model_b.is_not(None)),
                                   I.created_at, since, until), ["impression_id", "model", "model_b"])
    ids = inter["impression_id"].tolist()
    chunks = [_rows(session, _window(select(F.impression_id, F.item_id, F.kind, F.model)
                                     .where(F.impression_id.in_(ids[i:i + ID_CHUNK])), F.created_at, since, until),
                    ["impression_id", "item_id", "kind", "contributor"])
              for i in range(0, len(ids), ID_CHUNK)]
    out["interleaved"] = inter
    out["interleaved_feedback"] = (pd.concat(chunks, ignore_index=True) if chunks else
                                   pd.DataFrame(columns=["impression_id", "item_id", "kind", "contributor"]))
    recent = _window(select(I.id).where(I.model_b.is_(None)), I.created_at, since, until).order_by(
        I.created_at.desc()).limit(slate_sample).subquery()
    out["slate_sample"] = _rows(session, select(I.model, S.impression_id, S.item_id).join(S, S.impression_id == I.id)
                                .where(I.id.in_(select(recent.c.id))).order_by(S.impression_id, S.position),
                                ["model", "impression_id", "item_id"])
    sampled = out["slate_sample"]["item_id"].dropna().astype(str).unique().tolist()
    # events of any kind per sampled item: index-only counts (filtering kinds would visit every row)
    counts = [_rows(session, select(F.item_id, func.count()).where(F.item_id.in_(sampled[i:i + ID_CHUNK]))
                    .group_by(F.item_id), ["item_id", "count"]) for i in range(0, len(sampled), ID_CHUNK)]
    out["popularity"] = (pd.concat(counts, ignore_index=True) if counts else
                         pd.DataFrame({"item_id": pd.Series(dtype=object), "count": pd.Series(dtype=object)}))
    out["feedback_total"] = _rows(session, select(func.count()).select_from(F), ["n"])
    out["asset_index"] = _rows(session, select(GeneratedAsset.id, GeneratedAsset.kind, GeneratedAsset.generator,
                                               GeneratedAsset.personalized, GeneratedAsset.fallback,
                                               GeneratedAsset.params),
                               ["asset_id", "kind", "generator", "personalized", "fallback", "params"])
    chunks = [_rows(session, select(Item.item_id, Item.title, Item.genres).where(Item.item_id.in_(sampled[i:i + ID_CHUNK])),
                    ["item_id", "title", "genres"]) for i in range(0, len(sampled), ID_CHUNK)]
    out["items"] = (pd.concat(chunks, ignore_index=True) if chunks else
                    pd.DataFrame({c: pd.Series(dtype=object) for c in ("item_id", "title", "genres")}))
    out["catalog"] = _rows(session, select(func.count()).select_from(Item), ["n"])
    return out
