"""The event log: users, impressions and feedback written to the store, and the visitor reads that go with them.

Each write is one transaction (one session per user event). Library errors for bad input become
`AppInputError`, so the UI and the API deal with one exception type.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app import checks
from app.serving.catalog import Catalog
from app.errors import AppInputError, bad
from app.serving.ranking import ModelChoice, SlateRow

__all__ = ["EventLog", "FEEDBACK_KINDS"]

FEEDBACK_KINDS = ("click", "like", "dislike", "skip")  # what /feedback accepts ("open" is logged as "click")


class EventLog:
    """Writes and reads of the visitor's events. `Session` writes; `ReadSession` never takes the write lock."""

    def __init__(self, catalog: Catalog, Session: sessionmaker, ReadSession: sessionmaker) -> None:
        self.catalog = catalog
        self.Session = Session
        self.ReadSession = ReadSession
        self._stored_users: set[str] = set()  # users this process saw committed to the store (never deleted)
        self._lock = threading.Lock()

    # -- users ------------------------------------------------------------------------------------------------
    def user_kind(self, user_id: object) -> str:
        """"dataset" or "new"; `AppInputError` for an id nobody knows."""
        from annotation import reads

        user_id = checks.text("user_id", user_id, checks.ID_MAX)
        if self.catalog.is_dataset_user(user_id):
            return "dataset"
        with self.ReadSession() as s:
            kind = reads.user_kind(s, user_id)
        if kind is None:
            raise bad("user_id", f"a user of the {self.catalog.name} dataset or one created by onboarding", user_id)
        return kind

    def visitor_feedback(self, user_id: str) -> tuple[list[str], list[str]]:
        """(liked, disliked) item ids the user gave in the app, oldest first (the latest event per item wins)."""
        from annotation import reads

        with self.ReadSession() as s:
            liked, disliked = reads.visitor_feedback(s, user_id)
        return list(reversed(liked)), list(reversed(disliked))

    def ensure_user(self, s: Session, user_id: str) -> Callable[[], None]:
        """Store `user_id` inside the caller's transaction unless this process already did (two statements less
        per event). Returns the callback to run once that transaction committed."""
        from annotation import store

        if user_id not in self._stored_users:
            store.ensure_user(s, user_id, kind="dataset" if self.catalog.is_dataset_user(user_id) else "new")
        return lambda: self._remember(user_id)

    def _remember(self, user_id: str) -> None:
        with self._lock:
            self._stored_users.add(user_id)

    def create_new_user(self, liked: Sequence[str], min_likes: int = 3) -> str:
        """Onboard a new user from the items they picked: create the user and log a like for each pick."""
        from annotation import store

        liked = list(dict.fromkeys(liked))
        if len(liked) < min_likes:
            raise bad("liked", f"at least {min_likes} distinct items", f"{len(liked)} items")
        for item_id in liked:
            self.catalog.item(item_id)
        user_id = f"new-{uuid.uuid4().hex[:8]}"
        with self.Session() as s, s.begin():
            store.ensure_user(s, user_id, kind="new")
            for item_id in liked:
                store.record_feedback(s, checks.new_event_id(), user_id, item_id, "like")
        self._remember(user_id)
        return user_id

    # -- events -----------------------------------------------------------------------------------------------
    def record_impression(self, user_id: str, rows: Sequence[SlateRow], choice: ModelChoice, *,
                          event_id: str | None = None, context: dict[str, Any] | None = None) -> int:
        """Log the slate shown; returns the impression id that feedback refers to."""
        from annotation import store

        with self.Session() as s, s.begin():
            committed = self.ensure_user(s, user_id)
            imp = store.record_impression(
                s, event_id or checks.new_event_id(), user_id, choice.a if choice.b is None else (choice.a, choice.b),
                [r.item_id for r in rows], contributors=[r.contributor for r in rows] if choice.interleaved else None,
                context=context,
            )
        committed()
        return int(imp.id)

    def record_feedback(self, user_id: str, item_id: str, kind: str, impression_id: int | None, *,
                        event_id: str | None = None) -> int:
        """Log one like / dislike / click / skip ("open" is a click) on an item of a slate this user was shown;
        returns the feedback event's row id. Feedback without its impression is refused: anonymous dislikes
        would hide items from everyone who picks that user and poison retraining (onboarding picks are the one
        exception, logged by `create_new_user`)."""
        from annotation import errors as aerr
        from annotation import reads, store

        kind = "click" if kind == "open" else kind
        if kind not in FEEDBACK_KINDS:
            raise bad("kind", f"one of {list(FEEDBACK_KINDS)} (or 'open')", kind)
        if impression_id is None:
            raise bad("impression_id", "the impression (slate) that showed the item to this user", impression_id)
        self.user_kind(user_id)
        self.catalog.item(item_id)
        try:
            with self.Session() as s, s.begin():
                committed = self.ensure_user(s, user_id)
                if not reads.impression_shows(s, impression_id, user_id, item_id):
                    raise bad("impression_id", f"an impression that showed item {item_id!r} to user {user_id!r}",
                              impression_id)
                row = store.record_feedback(s, event_id or checks.new_event_id(), user_id, item_id, kind,
                                            impression_id=impression_id)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc
        committed()
        return int(row.id)

    def counts(self) -> dict[str, int]:
        """Row counts of the store's tables, for the Status tab."""
        from annotation import reads

        with self.ReadSession() as s:
            return reads.table_counts(s)
