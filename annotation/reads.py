"""Reads the app needs while it serves a visitor: who a user is, what they liked and disliked, which assets
exist already, how big the tables are; and for the quality upkeep, who is flagged and how many annotators
labelled each pair. Every function takes `session` first and only reads; the caller frames
the transaction (a read-only session in the app, so a read never waits for SQLite's write lock).

The labeling queue's reads (`label_progress`, `gold_answers`) live next to `next_pair` in `annotation.queue`, so that the rule
deciding what is left to label is written once; the studies' (`all_studies`) in `annotation.studies`; the
dashboard's frames in `annotation.frames`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from annotation import models as m
from annotation.models import (
    Annotator,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    ImpressionItem,
    PairTask,
    PreferenceLabel,
    User,
)

__all__ = ["user_kind", "latest_feedback_id", "latest_label_id", "annotator_id", "annotator_flags", "raters_per_pair",
           "impression_shows", "visitor", "visitor_feedback", "item_count", "table_counts", "STATE_KINDS", "latest_assets",
           "shown_assets", "recorded_asset_ids", "asset_uses", "untouched_pairs", "paired_items", "picked_prompts",
           "COUNTED_TABLES"]

STATE_KINDS = ("like", "dislike", "undo")  # the feedback kinds that set an item's like state (the latest wins)

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


def latest_feedback_id(session: Session) -> int | None:
    """The largest feedback event id (the data watermark a retrain schedule compares with), None when empty."""
    return session.scalar(select(func.max(FeedbackEvent.id)))


def latest_label_id(session: Session) -> int | None:
    """The largest preference-label id (the watermark of the preference model's schedule), None when empty."""
    return session.scalar(select(func.max(m.PreferenceLabel.id)))


def annotator_id(session: Session, name: str) -> int | None:
    """The id of the annotator called `name`, or None when nobody signed in with it."""
    return session.scalar(select(Annotator.id).where(Annotator.name == name))


def annotator_flags(session: Session) -> dict[str, tuple[int, bool]]:
    """name -> (id, flagged) of every annotator: whether `annotation.queue.set_reliability` last flagged them."""
    return {name: (int(id_), bool(flagged))
            for name, id_, flagged in session.execute(select(Annotator.name, Annotator.id, Annotator.flagged))}


def raters_per_pair(session: Session) -> dict[int, int]:
    """pair_id -> how many distinct annotators have a current A / B label on it (ties and skips left out);
    pairs without one are left out."""
    return {int(pair_id): int(n) for pair_id, n in session.execute(
        select(PreferenceLabel.pair_id, func.count(func.distinct(PreferenceLabel.annotator_id)))
        .where(PreferenceLabel.is_current.is_(True), PreferenceLabel.choice.in_(("A", "B")))
        .group_by(PreferenceLabel.pair_id))}


def impression_shows(session: Session, impression_id: int, user_id: str, item_id: str) -> bool:
    """True when impression `impression_id` was shown to `user_id` and had `item_id` on its slate."""
    found = session.scalar(
        select(ImpressionItem.position).join(Impression, Impression.id == ImpressionItem.impression_id)
        .where(Impression.id == impression_id, Impression.user_id == user_id, ImpressionItem.item_id == item_id)
    )
    return found is not None


def _feedback(session: Session, user_id: str, opened: bool) -> tuple[list[str], list[str], list[str]]:
    """(liked, disliked, opened) in one query: `visitor_feedback`'s two lists, and (when `opened`) the items the
    user ever opened (a click event), newest first."""
    kinds = (*STATE_KINDS, "click") if opened else STATE_KINDS
    rows = session.execute(
        select(FeedbackEvent.item_id, FeedbackEvent.kind)
        .where(FeedbackEvent.user_id == user_id, FeedbackEvent.kind.in_(kinds))
        .order_by(FeedbackEvent.id.desc())
    ).all()
    latest: dict[str, str] = {}
    clicked: dict[str, None] = {}
    for item_id, kind in rows:
        if kind == "click":
            clicked.setdefault(item_id)
        else:
            latest.setdefault(item_id, kind)
    return ([i for i, k in latest.items() if k == "like"], [i for i, k in latest.items() if k == "dislike"],
            list(clicked))


def visitor_feedback(session: Session, user_id: str) -> tuple[list[str], list[str]]:
    """(liked, disliked) item ids of the user's likes and dislikes, newest first. For each item only the latest
    of its like / dislike / undo events counts: a like after a dislike makes it liked again, and the reverse; an
    undo (the visitor took their like or dislike back) leaves the item neither liked nor disliked."""
    liked, disliked, _ = _feedback(session, user_id, opened=False)
    return liked, disliked


def visitor(session: Session, user_id: str, *, stored_kind: bool = True
            ) -> tuple[str | None, list[str], list[str], list[str]]:
    """(kind, liked, disliked, opened): who the visitor is, in one read session. kind: the stored user's kind
    (`user_kind`; None when no such user is stored, or when `stored_kind` is False: the caller knows the user
    without the users table); liked / disliked as `visitor_feedback` gives them, newest first; opened: the items
    they opened (clicked), newest first: a card opened was not passed over (`recommenders.visit`)."""
    kind = user_kind(session, user_id) if stored_kind else None
    liked, disliked, opened = _feedback(session, user_id, opened=True)
    return kind, liked, disliked, opened


def latest_feedback_on(session: Session, user_id: str, impression_id: int, item_id: str) -> tuple[str, str] | None:
    """(event_id, kind) of the user's latest feedback event on `item_id` as shown by `impression_id`, or None."""
    row = session.execute(
        select(FeedbackEvent.event_id, FeedbackEvent.kind)
        .where(FeedbackEvent.user_id == user_id, FeedbackEvent.impression_id == impression_id,
               FeedbackEvent.item_id == item_id)
        .order_by(FeedbackEvent.id.desc()).limit(1)
    ).first()
    return (str(row[0]), str(row[1])) if row is not None else None


def item_count(session: Session) -> int:
    """How many items the store holds."""
    return int(session.scalar(select(func.count()).select_from(m.Item)) or 0)


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


def asset_uses(session: Session, content_hashes: Iterable[str]) -> dict[str, tuple[bool, Any]]:
    """For content keys: (whether a pair refers to an asset row with that key, the newest such row's created_at).
    A pair is what every label and Create pick refers to, so a key with True is training data. Keys without any
    asset row are left out. Queries in chunks of 500 keys."""
    keys = list(dict.fromkeys(content_hashes))
    out: dict[str, tuple[bool, Any]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        newest = dict(session.execute(
            select(GeneratedAsset.content_hash, func.max(GeneratedAsset.created_at))
            .where(GeneratedAsset.content_hash.in_(chunk)).group_by(GeneratedAsset.content_hash)).all())
        paired = set()
        for side in (PairTask.asset_a_id, PairTask.asset_b_id):
            paired.update(session.scalars(
                select(GeneratedAsset.content_hash).join(PairTask, side == GeneratedAsset.id)
                .where(GeneratedAsset.content_hash.in_(chunk)).distinct()))
        out.update({key: (key in paired, when) for key, when in newest.items()})
    return out


def _rank(params: Any) -> Any:
    """params["best_of_n"]["rank"] of a stored asset, or the string "none" when it was not one of N candidates."""
    if not isinstance(params, dict) or not isinstance(params.get("best_of_n"), dict):
        return "none"
    return params["best_of_n"].get("rank")


def shown_assets(session: Session, user_id: str, item_ids: Sequence[str], seed: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The cover and caption shown on the user's card of each item, per (item_id, kind), in one query.

    The rule: the newest asset made for `user_id` that a best-of-N choice showed (params["best_of_n"]["rank"]
    == 0); for an (item, kind) without one, the newest asset made with `seed` that was no best-of-N candidate at
    all (assets made before best-of-N, or generic ones). A candidate that lost, or a caption dropped by the
    grounding check (rank None), is never returned. Values as `latest_assets`'s, plus "params"."""
    rows = session.execute(
        select(GeneratedAsset.id, GeneratedAsset.item_id, GeneratedAsset.kind, GeneratedAsset.path,
               GeneratedAsset.text, GeneratedAsset.fallback, GeneratedAsset.generator, GeneratedAsset.seed,
               GeneratedAsset.params)
        .where(GeneratedAsset.user_id == user_id, GeneratedAsset.item_id.in_(list(item_ids)))
        .order_by(GeneratedAsset.id)
    ).all()
    shown: dict[tuple[str, str], dict[str, Any]] = {}
    plain: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:  # later rows win
        rank = _rank(row.params)
        value = {"asset_id": int(row.id), "path": row.path, "text": row.text, "fallback": bool(row.fallback),
                 "generator": row.generator, "params": row.params or {}}
        if rank == 0:
            shown[(row.item_id, row.kind)] = value
        elif rank == "none" and row.seed == seed:
            plain[(row.item_id, row.kind)] = value
    return {**plain, **shown}


def made_pairs(session: Session, kind: str, seed: int, item_ids: Sequence[str]) -> set[tuple[str | None, str]]:
    """The (user_id, item_id) pairs among `item_ids` that have a `kind` ("cover"/"caption") row made with `seed`
    (user_id None: a generic one); read 500 items per query."""
    items = sorted(set(item_ids))
    done: set[tuple[str | None, str]] = set()
    for start in range(0, len(items), 500):
        done.update((user_id, item_id) for user_id, item_id in session.execute(
            select(GeneratedAsset.user_id, GeneratedAsset.item_id)
            .where(GeneratedAsset.kind == kind, GeneratedAsset.seed == seed,
                   GeneratedAsset.item_id.in_(items[start : start + 500]))))
    return done


def untouched_pairs(session: Session) -> int:
    """Asset pairs (cover or caption) no annotator has been handed or has labelled yet (slots_taken == 0)."""
    return int(session.scalar(select(func.count()).select_from(PairTask)
                              .where(PairTask.slots_taken == 0, PairTask.asset_a_id.is_not(None))) or 0)


def paired_items(session: Session, user_id: str, item_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(item_id, kind) of the given items that already have an asset pair made for `user_id` (one query)."""
    rows = session.execute(
        select(GeneratedAsset.item_id, PairTask.kind)
        .join(PairTask, PairTask.asset_a_id == GeneratedAsset.id)
        .where(PairTask.target_user_id == user_id, GeneratedAsset.item_id.in_(list(item_ids)))
    ).all()
    return {(item_id, kind) for item_id, kind in rows}


def picked_prompts(session: Session, annotator_name: str, limit: int = 10) -> list[str]:
    """The prompts of the covers the annotator `annotator_name` chose (current A/B labels on cover pairs), newest
    first, each prompt once, at most `limit`. The app passes its Create-tab picker ("user:<user_id>")."""
    rows = session.execute(
        select(PreferenceLabel.choice, PairTask.asset_a_id, PairTask.asset_b_id)
        .join(Annotator, Annotator.id == PreferenceLabel.annotator_id)
        .join(PairTask, PairTask.id == PreferenceLabel.pair_id)
        .where(Annotator.name == annotator_name, PreferenceLabel.is_current.is_(True),
               PreferenceLabel.choice.in_(("A", "B")), PairTask.kind == "cover")
        .order_by(PreferenceLabel.id.desc())
        .limit(50 * max(int(limit), 1))
    ).all()
    winners = list(dict.fromkeys(int(a if choice == "A" else b) for choice, a, b in rows))
    if not winners:
        return []
    prompts = dict(session.execute(select(GeneratedAsset.id, GeneratedAsset.prompt)
                                   .where(GeneratedAsset.id.in_(winners))).all())
    return list(dict.fromkeys(prompts[w] for w in winners if prompts.get(w)))[:limit]
