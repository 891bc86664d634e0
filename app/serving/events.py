"""The event log: users, impressions and feedback written to the store, and the visitor reads that go with them.

Each write is one transaction (one session per user event). Library errors for bad input become
`AppInputError`, so the UI and the API deal with one exception type.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from app import checks
from app.serving.catalog import Catalog
from app.errors import AppInputError, bad
from app.serving.ranking import ModelChoice, SlateRow

__all__ = ["EventLog", "FEEDBACK_KINDS", "Feedback", "Visit"]

# what /feedback and the cards send ("open" is logged as "click"); "undo" takes back the user's like or dislike of
# the item (the latest of an item's like / dislike / undo is its state: `annotation.reads.visitor_feedback`)
FEEDBACK_KINDS = ("click", "like", "dislike", "skip", "undo")
_SIGNALS = uuid.UUID("5b1e0f6c-3f0e-4d5e-9a57-7a1d3c2b9e10")  # the namespace of feedback UUIDs derived from a signal


@dataclass(frozen=True)
class Visit:
    """Who a page is for: a user (their id checked), what they like and dislike in the app now (oldest first), and
    what they opened (a card opened is not one passed over)."""

    user_id: str
    kind: str = "dataset"  # "dataset" | "new"
    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    opened: tuple[str, ...] = ()


class Feedback(NamedTuple):
    """A feedback event as stored: its row id, its event UUID, and whether the request repeated a signal that
    was stored already (then nothing new was written)."""

    id: int
    event_id: str
    repeated: bool


class EventLog:
    """Writes and reads of the visitor's events. `Session` writes; `ReadSession` never takes the write lock."""

    def __init__(self, catalog: Catalog, Session: sessionmaker, ReadSession: sessionmaker) -> None:
        self.catalog = catalog
        self.Session = Session
        self.ReadSession = ReadSession
        self._stored_users: set[str] = set()  # users this process saw committed to the store (never deleted)
        self._lock = threading.Lock()

    # -- users ------------------------------------------------------------------------------------------------
    def visitor(self, user_id: object) -> Visit:
        """The visitor, read once per page: the id checked (the one check of it on the way to the store), their
        kind and their app likes and dislikes in one read (`annotation.reads.visitor`: the latest of an item's
        like / dislike / undo wins, the one rule every tab, the API and the recommenders follow), so feedback
        sent anywhere counts on every open page. `AppInputError` for an id nobody knows. A dataset user is
        stored here, once per process, so every later write of theirs can rely on the row."""
        from annotation import reads, store

        user_id = checks.text("user_id", user_id, checks.ID_MAX)
        dataset = self.catalog.is_dataset_user(user_id)
        with self.ReadSession() as s:
            stored, liked, disliked, opened = reads.visitor(s, user_id, stored_kind=not dataset)
        kind = self._kind(user_id, dataset, stored)
        if dataset and user_id not in self._stored_users:  # a user made by onboarding was stored then
            with self.Session() as s, s.begin():
                store.insert_user(s, user_id, kind)
            self._remember(user_id)
        return Visit(user_id, kind, tuple(reversed(liked)), tuple(reversed(disliked)), tuple(reversed(opened)))

    def user_kind(self, user_id: object) -> str:
        """"dataset" or "new"; `AppInputError` for an id nobody knows."""
        from annotation import reads

        user_id = checks.text("user_id", user_id, checks.ID_MAX)
        dataset = self.catalog.is_dataset_user(user_id)
        with self.ReadSession() as s:  # a session without a query takes no connection
            return self._kind(user_id, dataset, None if dataset else reads.user_kind(s, user_id))

    def _kind(self, user_id: str, dataset: bool, stored: str | None) -> str:
        """The one rule of a visitor's kind: a dataset user (no read needed), else the stored user's kind;
        `AppInputError` for an id nobody knows."""
        kind = "dataset" if dataset else stored
        if kind is None:
            raise bad("user_id", f"a user of the {self.catalog.name} dataset or one created by onboarding", user_id)
        return kind

    def ensure_user(self, s: Session, user_id: str) -> Callable[[], None]:
        """Store `user_id` inside the caller's transaction unless this process already did, for a write made for a
        user who need not have visited (an asset made for a profile). Returns the callback to run once that
        transaction committed."""
        from annotation import store

        if user_id not in self._stored_users:
            store.insert_user(s, user_id, "dataset" if self.catalog.is_dataset_user(user_id) else "new")
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
        """Log the slate shown to a visitor (`visitor` checked and stored them; the rows come from the catalog, so
        nothing is checked again); returns the impression id that feedback refers to."""
        from annotation import store

        with self.Session() as s, s.begin():
            imp = store.insert_impression(
                s, event_id or checks.new_event_id(), user_id, choice.names, [r.item_id for r in rows],
                contributors=[r.contributor for r in rows] if choice.interleaved else None, context=context,
            )
        return int(imp.id)

    def record_feedback(self, user_id: str, item_id: str, kind: str, impression_id: int | None, *,
                        event_id: str | None = None) -> "Feedback":
        """Log one like / dislike / click / skip / undo ("open" is a click) on an item of a slate this user was shown;
        returns the stored event (`Feedback`: its row id, its event UUID, and whether it repeated the signal
        already stored, see `_signal_id`). Feedback without its impression is refused: anonymous dislikes
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
            with self.Session() as s, s.begin():  # the impression's user is stored: no user to write
                if not reads.impression_shows(s, impression_id, user_id, item_id):
                    raise bad("impression_id", f"an impression that showed item {item_id!r} to user {user_id!r}",
                              impression_id)
                signal, repeated = self._signal_id(s, user_id, item_id, kind, impression_id, event_id)
                row = store.record_feedback(s, signal, user_id, item_id, kind, impression_id=impression_id)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc
        return Feedback(int(row.id), str(row.event_id), repeated)

    @staticmethod
    def _signal_id(s: Session, user_id: str, item_id: str, kind: str, impression_id: int,
                   event_id: str | None) -> tuple[str, bool]:
        """(the event UUID to store a feedback event under, whether it repeats the stored signal), such that the
        same signal is stored once: a like (or
        dislike, click, skip) repeated on the same item of the same impression, with nothing else from this user
        on it in between, is one signal, however many requests carry it.

        This is a rule of the live app, not of the store: the store is a faithful log whose contract is
        idempotency by event UUID (a retry of one event), and imports or replays of real histories must keep
        every event they carry; what counts as "the same signal" (a like on a slate is a state, not a counter)
        is decided where feedback from visitors comes in, beside "feedback must name its impression". It is
        enforced through the store's own idempotency, so it holds under concurrency: the UUID is derived from
        the signal and the event it follows, so two concurrent identical likes derive one UUID and one insert
        wins. A client's own `event_id` is kept for a signal that changes something (the first like, a dislike
        after a like), so its retries stay retries."""
        from annotation import reads

        latest = reads.latest_feedback_on(s, user_id, impression_id, item_id)
        if latest is not None and latest[1] == kind:
            return latest[0], True  # the same signal again: the stored event answers
        if event_id:
            return event_id, False
        return str(uuid.uuid5(_SIGNALS, "\x1f".join((user_id, str(impression_id), item_id, kind,
                                                      latest[0] if latest else "")))), False

    def counts(self) -> dict[str, int]:
        """Row counts of the store's tables, for the Status tab."""
        from annotation import reads

        with self.ReadSession() as s:
            return reads.table_counts(s)
