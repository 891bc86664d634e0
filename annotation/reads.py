"""Reads the app needs while it serves a visitor: who a user is, what they liked and disliked, which assets
exist already, how big the tables are. Every function takes `session` first and only reads; the caller frames
the transaction (a read-only session in the app, so a read never waits for SQLite's write lock).

The labeling queue's reads (`label_progress`) live next to `next_pair` in `annotation.store`, so that the rule
deciding what is left to label is written once; the dashboard's frames live in `annotation.frames`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from annotation import models as m
from annotation.models import Annotator, FeedbackEvent, GeneratedAsset, Impression, ImpressionItem, User

__all__ = ["user_kind", "annotator_id", "impression_shows", "visitor_feedback", "table_counts", "latest_assets", "recorded_asset_ids", "COUNTED_TABLES"]

# The tables the Status page counts, by the name it shows.
COUNTED_TABLES = {
    "users": m.User, "impressions": m.Impression, "feedback events": m.FeedbackEvent,
    "generated assets": m.GeneratedAsset, "pair tasks": m.PairTask, "preference labels": m.PreferenceLabel,
    "annotators": m.Annotator, "items": m.Item,
}


def user_kind(session: Session, user_id: str) -> str | None:
    """The stored user's kind ("dataset" or "new"), or None when no such user is stored."""
    row = session.get(User, user_id)
    return None if row is None else row.kind


def annotator_id(session: Session, name: str) -> int | None:
    """The id of the annotator called `name`, or None when nobody signed in with it."""
    return session.scalar(select(Annotator.id).where(Annotator.name == name))


def impression_shows(session: Session, impression_id: int, user_id: str, item_id: str) -> bool:
    """True when impression `impression_id` was shown to `user_id` and had `item_id` on its slate."""
    found = session.scalar(
        select(ImpressionItem.position).join(Impression, Impression.id == ImpressionItem.impression_id)
        .where(Impression.id == impression_id, Impression.user_id == user_id, ImpressionItem.item_id == item_id)
    )
    return found is not None


def visitor_feedback(session: Session, user_id: str) -> tuple[list[str], list[str]]:
    """(liked, disliked) item ids of the user's likes and dislikes, newest first. For each item only the latest
    of its like / dislike events counts: a like after a dislike makes it liked again, and the reverse."""
    rows = session.execute(
        select(FeedbackEvent.item_id, FeedbackEvent.kind)
        .where(FeedbackEvent.user_id == user_id, FeedbackEvent.kind.in_(("like", "dislike")))
        .order_by(FeedbackEvent.id.desc())
    ).all()
    latest: dict[str, str] = {}
    for item_id, kind in rows:
        latest.setdefault(item_id, kind)
    return [i for i, k in latest.items() if k == "like"], [i for i, k in latest.items() if k == "dislike"]


def table_counts(session: Session) -> dict[str, int]:
    """Row counts of the store's main tables, by the names in COUNTED_TABLES."""
    return {name: int(session.scalar(select(func.count()).select_from(t)) or 0) for name, t in COUNTED_TABLES.items()}


def latest_assets(session: Session, user_id: str, item_ids: Sequence[str], seed: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest asset per (item_id, kind) made for `user_id` with `seed`, for the given items:
    {(item_id, "cover" | "caption"): {"asset_id", "path", "text", "fallback", "generator"}}."""
    rows = session.execute(
        select(GeneratedAsset.id, GeneratedAsset.item_id, GeneratedAsset.kind, GeneratedAsset.path,
               GeneratedAsset.text, GeneratedAsset.fallback, GeneratedAsset.generator)
        .where(GeneratedAsset.user_id == user_id, GeneratedAsset.item_id.in_(list(item_ids)),
               GeneratedAsset.seed == seed)
        .order_by(GeneratedAsset.id)
    ).all()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:  # later rows win
        out[(row.item_id, row.kind)] = {"asset_id": int(row.id), "path": row.path, "text": row.text,
                                        "fallback": bool(row.fallback), "generator": row.generator}
    return out


def recorded_asset_ids(session: Session, keys: Iterable[tuple[str, str | None, str]]) -> dict[tuple[str, str | None, str], int]:
    """For (content_hash, user_id, kind) keys: the first asset row already recorded with them (one query).

    A file served from the asset cache may have been recorded before for the same user; reusing that row keeps
    asset ids stable instead of recording the same picture again."""
    keys = list(keys)
    if not keys:
        return {}
    users = {user for _, user, _ in keys}
    whose = [GeneratedAsset.user_id.in_(users - {None})] + ([GeneratedAsset.user_id.is_(None)] if None in users else [])
    found = session.execute(
        select(GeneratedAsset.content_hash, GeneratedAsset.user_id, GeneratedAsset.kind, func.min(GeneratedAsset.id))
        .where(GeneratedAsset.content_hash.in_({h for h, _, _ in keys}), or_(*whose))
        .group_by(GeneratedAsset.content_hash, GeneratedAsset.user_id, GeneratedAsset.kind)
    )
    return {(h, user, kind): int(asset_id) for h, user, kind, asset_id in found}
