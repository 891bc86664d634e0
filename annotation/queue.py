"""Pairs, the labeling queue and preference labels: the annotation half of the store.

Every function takes `session` first and never commits (the caller frames the transaction), and validates every
argument before its first write, as `annotation.store` does; the store's idempotency rules hold here too (a
label carries a client-generated `event_id`: a retry stores nothing and returns the stored row).

The queue: `next_pair` hands an annotator a pair they have not been handed before, only while fewer than
`overlap` annotators hold it (open leases plus finished non-skip labels). The slot is taken with a
conditional `UPDATE ... SET slots_taken = slots_taken + 1 WHERE slots_taken < overlap`, which is atomic under
concurrency on both engines, so no pair is ever handed to more than `overlap` annotators at once. A "skip"
frees its slot for another annotator; a lease that is not finished within `lease_seconds` frees its slot too.

Labels and "undo": `record_preference` on a pair the annotator already labeled replaces their label; the old
row stays in `preference_labels` with `is_current=False` (the history). The Label tab's undo is
`undo_last_preference`: it clears the annotator's most recent current label (a new row with `choice=None`),
and hands that pair back to them as their next pair. `preferences_frame` shows current, non-cleared labels.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, selectinload

from annotation import _validate as v
from annotation.errors import InvalidInputError, UnknownAssetError, UnknownImpressionError, UnknownPairError
from annotation.models import (
    CHOICES,
    PAIR_KINDS,
    GeneratedAsset,
    Impression,
    PairAssignment,
    PairTask,
    PreferenceLabel,
    utcnow,
)
from annotation.store import LIMITS, _MAX_INT, _check_replay, _insert_once, _require_annotator, _require_user

__all__ = ["create_pair", "get_pair", "next_pair", "label_progress", "record_preference", "clear_preference",
           "undo_last_preference"]


_PAIR_LOADS = (
    selectinload(PairTask.asset_a),
    selectinload(PairTask.asset_b),
    selectinload(PairTask.impression_a).selectinload(Impression.items),
    selectinload(PairTask.impression_b).selectinload(Impression.items),
)


def get_pair(session: Session, pair_id: int) -> PairTask:
    """The pair `pair_id` with its two assets (or two impressions and their items) loaded."""
    pair_id = v.integer(pair_id, "pair_id", 1, _MAX_INT)
    pair = session.get(PairTask, pair_id, options=_PAIR_LOADS, populate_existing=True)
    if pair is None:
        raise UnknownPairError(f"pair_id {pair_id} does not exist (queue.create_pair)")
    return pair


def create_pair(session: Session, asset_a_id: int, asset_b_id: int, target_user_id: str | None = None,
                kind: str | None = None) -> PairTask:
    """A pair to compare, shown as A = `asset_a_id`, B = `asset_b_id`; idempotent (the same two sides, in either
    order, for the same target user return the existing pair).

    kind: "cover" | "caption" (two generated assets of that kind; None infers it from the assets) or "slate"
    (then the two ids are impression ids). target_user_id: the user both sides were made for, if any.
    """
    kind = v.choice(kind, "kind", PAIR_KINDS) if kind is not None else None
    a = v.integer(asset_a_id, "asset_a_id", 1, _MAX_INT)
    b = v.integer(asset_b_id, "asset_b_id", 1, _MAX_INT)
    if a == b:
        raise InvalidInputError(f"asset_a_id and asset_b_id must differ, got {a} twice")
    if target_user_id is not None:
        target_user_id = _require_user(session, target_user_id, "target_user_id")
    if kind == "slate":
        for name, pk in (("asset_a_id", a), ("asset_b_id", b)):
            if session.get(Impression, pk) is None:
                raise UnknownImpressionError(f"{name} {pk} must be a recorded impression for a slate pair")
        sides = {"impression_a_id": a, "impression_b_id": b}
    else:
        found = {}
        for name, pk in (("asset_a_id", a), ("asset_b_id", b)):
            asset = session.get(GeneratedAsset, pk)
            if asset is None:
                raise UnknownAssetError(f"{name} {pk} is not a generated asset (store.record_asset)")
            found[name] = asset
        kinds = {asset.kind for asset in found.values()}
        if len(kinds) != 1:
            raise InvalidInputError(f"asset_a_id and asset_b_id must be assets of one kind, got {sorted(kinds)}")
        if kind is None:
            kind = kinds.pop()
        elif kind not in kinds:
            raise InvalidInputError(f"kind must match the assets' kind {sorted(kinds)}, got {kind!r}")
        sides = {"asset_a_id": a, "asset_b_id": b}
    low, high = sorted((a, b))
    key = f"{kind}:{low}:{high}:{target_user_id or ''}"
    _insert_once(session, PairTask, {"pair_key": key, "kind": kind, **sides, "target_user_id": target_user_id,
                                     "slots_taken": 0, "created_at": utcnow()}, conflict=("pair_key",), returning=False)
    pair_id = session.scalars(select(PairTask.id).where(PairTask.pair_key == key)).one()
    return get_pair(session, pair_id)


def _release_expired(session: Session, now: dt.datetime) -> None:
    expired = session.scalars(
        delete(PairAssignment)
        .where(PairAssignment.completed_at.is_(None), PairAssignment.expires_at < now)
        .returning(PairAssignment.pair_id)
    ).all()
    for pair_id in expired:  # an open lease always holds a slot
        session.execute(update(PairTask).where(PairTask.id == pair_id).values(slots_taken=PairTask.slots_taken - 1))


def _open_to(annotator_id: int, overlap: int) -> tuple:
    """The queue's one rule, as WHERE clauses on PairTask: a pair is open to an annotator while fewer than
    `overlap` annotators hold it and it was never handed to this annotator."""
    handed = exists().where(PairAssignment.pair_id == PairTask.id, PairAssignment.annotator_id == annotator_id)
    return PairTask.slots_taken < overlap, ~handed


def label_progress(session: Session, annotator_id: int, overlap: int = 2) -> tuple[int, int]:
    """(done, remaining) for an annotator: their current non-cleared labels, and what `next_pair` could still
    hand them: their open lease (the pair on their screen) plus every pair open to them by `_open_to`."""
    annotator = _require_annotator(session, annotator_id)
    overlap = v.integer(overlap, "overlap", 1, LIMITS["overlap"])
    done = session.scalar(
        select(func.count()).select_from(PreferenceLabel).where(
            PreferenceLabel.annotator_id == annotator.id, PreferenceLabel.is_current.is_(True),
            PreferenceLabel.choice.is_not(None))
    ) or 0
    leased = session.scalar(
        select(func.count()).select_from(PairAssignment).where(
            PairAssignment.annotator_id == annotator.id, PairAssignment.completed_at.is_(None))
    ) or 0
    open_pairs = session.scalar(select(func.count()).select_from(PairTask).where(*_open_to(annotator.id, overlap))) or 0
    return int(done), int(leased + open_pairs)


def next_pair(session: Session, annotator_id: int, overlap: int = 2, lease_seconds: int = 1800,
              kind: str | None = None, now: dt.datetime | None = None) -> PairTask | None:
    """The next pair for `annotator_id` to label, or None when nothing is left for them.

    Returns their open (unfinished, unexpired) pair if they have one, so a page reload shows the same pair.
    Otherwise claims a pair they were never handed, held by fewer than `overlap` annotators, preferring pairs
    closest to complete; the lease lasts `lease_seconds`. kind: only "cover", "caption" or "slate" pairs.
    """
    annotator = _require_annotator(session, annotator_id)
    overlap = v.integer(overlap, "overlap", 1, LIMITS["overlap"])
    lease_seconds = v.integer(lease_seconds, "lease_seconds", 1, LIMITS["lease_seconds"])
    kind = v.choice(kind, "kind", PAIR_KINDS) if kind is not None else None
    now = v.timestamp(now, "now") or utcnow()
    _release_expired(session, now)
    open_pair = session.scalars(
        select(PairAssignment.pair_id)
        .where(PairAssignment.annotator_id == annotator.id, PairAssignment.completed_at.is_(None))
        .order_by(PairAssignment.assigned_at.desc(), PairAssignment.id.desc())
        .limit(1)
    ).first()
    if open_pair is not None:
        return get_pair(session, open_pair)
    candidates = select(PairTask.id).where(*_open_to(annotator.id, overlap))
    if kind is not None:
        candidates = candidates.where(PairTask.kind == kind)
    candidates = candidates.order_by(PairTask.slots_taken.desc(), PairTask.id).limit(1)
    claimable = candidates
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # NO KEY UPDATE (only slots_taken changes): a label being written for the pair holds a KEY SHARE lock
        # on it (its foreign key), which FOR UPDATE would conflict with and SKIP LOCKED would pass over
        claimable = candidates.with_for_update(skip_locked=True, of=PairTask, key_share=True)
    for attempt in range(100):  # a lost race moves on to the next candidate
        pair_id = session.scalars(claimable).first()
        if pair_id is None:
            if postgresql and session.scalars(candidates).first() is not None:
                # SKIP LOCKED passed over pairs that other annotators are claiming right now: the queue is not
                # empty for this annotator, so wait for those claims to finish and look again
                time.sleep(min(0.002 * (attempt + 1), 0.05))
                continue
            return None
        claimed = session.execute(
            update(PairTask)
            .where(PairTask.id == pair_id, PairTask.slots_taken < overlap)
            .values(slots_taken=PairTask.slots_taken + 1)
        ).rowcount
        if claimed:
            session.add(PairAssignment(pair_id=pair_id, annotator_id=annotator.id, assigned_at=now,
                                       expires_at=now + dt.timedelta(seconds=lease_seconds), holds_slot=True))
            session.flush()
            return get_pair(session, pair_id)
    raise RuntimeError("next_pair: lost the race for 100 candidate pairs in a row")


def _resolve_pair(session: Session, pair) -> PairTask:
    if isinstance(pair, tuple):
        if len(pair) != 2:
            raise InvalidInputError(f"pair must be a pair id or a tuple (asset_a_id, asset_b_id), got {pair!r}")
        assets = [session.get(GeneratedAsset, v.integer(pk, "pair asset id", 1, _MAX_INT)) for pk in pair]
        for pk, asset in zip(pair, assets):
            if asset is None:
                raise UnknownAssetError(f"pair names asset {pk}, which is not a generated asset")
        users = {asset.user_id for asset in assets}
        target = users.pop() if len(users) == 1 else None
        return create_pair(session, pair[0], pair[1], target_user_id=target)
    return get_pair(session, pair)


def _lock_assignment(session: Session, pair_id: int, annotator_id: int, now: dt.datetime) -> PairAssignment:
    """The (pair, annotator) assignment, locked for this transaction; created (finished, holding no slot) for a
    label given without the queue. The lock serialises every change to this annotator's label on this pair."""
    _insert_once(session, PairAssignment, {
        "pair_id": pair_id, "annotator_id": annotator_id, "assigned_at": now, "expires_at": now,
        "completed_at": now, "holds_slot": False,
    }, conflict=("pair_id", "annotator_id"), returning=False)
    return session.scalars(
        select(PairAssignment)
        .where(PairAssignment.pair_id == pair_id, PairAssignment.annotator_id == annotator_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _update_assignment(session: Session, assignment: PairAssignment, *, completed: bool, holds_slot: bool,
                       now: dt.datetime, lease_seconds: int = 1800) -> None:
    """Finish or re-open an assignment and keep its pair's slot count in step."""
    delta = int(holds_slot) - int(assignment.holds_slot)
    assignment.holds_slot = holds_slot
    assignment.completed_at = now if completed else None
    if not completed:
        assignment.expires_at = now + dt.timedelta(seconds=lease_seconds)
    if delta:
        session.execute(update(PairTask).where(PairTask.id == assignment.pair_id)
                        .values(slots_taken=PairTask.slots_taken + delta))
    session.flush()


def _current_label(session: Session, pair_id: int, annotator_id: int) -> PreferenceLabel | None:
    return session.scalars(
        select(PreferenceLabel).where(PreferenceLabel.pair_id == pair_id, PreferenceLabel.annotator_id == annotator_id,
                                      PreferenceLabel.is_current.is_(True))
    ).one_or_none()


def _replayed_label(session: Session, event_id: str, sent: Mapping[str, Any]) -> PreferenceLabel | None:
    stored = session.scalars(select(PreferenceLabel).where(PreferenceLabel.event_id == event_id)).one_or_none()
    if stored is not None:
        _check_replay("preference label", event_id, {k: getattr(stored, k) for k in sent}, sent)
    return stored


def _append_label(session: Session, row: dict[str, Any]) -> PreferenceLabel:
    previous = _current_label(session, row["pair_id"], row["annotator_id"])
    if previous is not None:
        previous.is_current = False
        session.flush()
    new_id = _insert_once(session, PreferenceLabel, dict(row, is_current=True,
                                                          supersedes_id=previous.id if previous else None))
    return session.get(PreferenceLabel, new_id)


def record_preference(session: Session, event_id, pair: int | tuple[int, int], annotator_id: int, choice: str,
                      time_spent_ms: int | None = None, guideline_version: str = "v1",
                      at: dt.datetime | None = None, leased_only: bool = False) -> PreferenceLabel:
    """Record (or change) `annotator_id`'s choice on a pair; returns the new current label row.

    pair: a pair id, or (asset_a_id, asset_b_id), which finds or creates the pair. choice: "A", "B", "tie" or
    "skip". Labeling a pair the annotator already labeled replaces their label and keeps the old one as history.
    leased_only: accept the label only when `next_pair` handed this pair to this annotator and the lease is still
    open (not finished, not expired); a retry of an already stored label (same event_id) is still answered. A
    public labeling endpoint sets it, so nobody labels pairs they were not given.
    """
    event_id = v.event_id(event_id)
    choice = v.choice(choice, "choice", CHOICES)
    time_spent_ms = v.integer(time_spent_ms, "time_spent_ms", 0, LIMITS["time_spent_ms"], optional=True)
    guideline_version = v.text(guideline_version, "guideline_version", 32)
    annotator = _require_annotator(session, annotator_id)
    at = v.timestamp(at) or utcnow()
    if isinstance(pair, bool) or not isinstance(pair, (int, tuple)) and not hasattr(pair, "__index__"):
        raise InvalidInputError(f"pair must be a pair id or a tuple (asset_a_id, asset_b_id), got {pair!r}")
    task = get_pair(session, pair) if leased_only else _resolve_pair(session, pair)
    sent = {"pair_id": task.id, "annotator_id": annotator.id, "choice": choice}
    if leased_only:
        replay = _replayed_label(session, event_id, sent)
        if replay is not None:
            return replay
        leased = session.scalar(select(PairAssignment.id).where(
            PairAssignment.pair_id == task.id, PairAssignment.annotator_id == annotator.id,
            PairAssignment.completed_at.is_(None), PairAssignment.expires_at >= at))
        if leased is None:
            raise InvalidInputError(f"pair_id {task.id} is not leased to annotator {annotator.id}: label the pair "
                                    "that next_pair handed you (a lease lasts lease_seconds)")
    assignment = _lock_assignment(session, task.id, annotator.id, at)
    replay = _replayed_label(session, event_id, sent)
    if replay is not None:
        return replay
    _update_assignment(session, assignment, completed=True, holds_slot=choice != "skip", now=at)
    return _append_label(session, {
        "event_id": event_id, **sent, "time_spent_ms": time_spent_ms, "guideline_version": guideline_version,
        "created_at": at,
    })


def clear_preference(session: Session, event_id, pair_id: int, annotator_id: int, lease_seconds: int = 1800,
                     at: dt.datetime | None = None) -> PreferenceLabel:
    """Clear `annotator_id`'s current label on `pair_id` (a new history row with choice None) and hand the pair
    back to them as an open lease. Raises `InvalidInputError` when they have no label on it to clear."""
    event_id = v.event_id(event_id)
    annotator = _require_annotator(session, annotator_id)
    task = get_pair(session, pair_id)
    lease_seconds = v.integer(lease_seconds, "lease_seconds", 1, LIMITS["lease_seconds"])
    at = v.timestamp(at) or utcnow()
    assignment = _lock_assignment(session, task.id, annotator.id, at)
    replay = _replayed_label(session, event_id, {"pair_id": task.id, "annotator_id": annotator.id, "choice": None})
    if replay is not None:
        return replay
    current = _current_label(session, task.id, annotator.id)
    if current is None or current.choice is None:
        raise InvalidInputError(f"pair_id {task.id} has no label by annotator_id {annotator.id} to clear")
    _update_assignment(session, assignment, completed=False, holds_slot=True, now=at, lease_seconds=lease_seconds)
    return _append_label(session, {"event_id": event_id, "pair_id": task.id, "annotator_id": annotator.id,
                                   "choice": None, "time_spent_ms": None,
                                   "guideline_version": current.guideline_version, "created_at": at})


def undo_last_preference(session: Session, event_id, annotator_id: int, lease_seconds: int = 1800,
                         at: dt.datetime | None = None) -> PreferenceLabel | None:
    """The Label tab's undo: clear the annotator's most recent current label and hand its pair back to them
    (their `next_pair` returns it). Returns the clearing row, or None when there is nothing to undo."""
    event_id = v.event_id(event_id)
    annotator = _require_annotator(session, annotator_id)
    replay = session.scalars(select(PreferenceLabel).where(PreferenceLabel.event_id == event_id)).one_or_none()
    if replay is not None:
        return replay
    last = session.scalars(
        select(PreferenceLabel)
        .where(PreferenceLabel.annotator_id == annotator.id, PreferenceLabel.is_current.is_(True),
               PreferenceLabel.choice.is_not(None))
        .order_by(PreferenceLabel.created_at.desc(), PreferenceLabel.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    return clear_preference(session, event_id, last.pair_id, annotator.id, lease_seconds=lease_seconds, at=at)


