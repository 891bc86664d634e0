"""The background worker of slate assets: one thread, a bounded queue of jobs, and the gate by which it gives way
to interactive requests.

A slate never waits for a model: the slate flow queues the items whose cover or caption is missing
(`generate_later`) and answers at once; this worker makes them, one job at a time, oldest first, and records
what it made in batches. Two lanes: the cards on a visitor's screen go before prefetched ones (the next page,
`prefetch=True`), and a prefetch job gives way between items when a screen's job arrives, so a page's own
captions never wait behind another visitor's next page. Every request that answers a visitor runs inside
`interactive()` (the `gated` decorator applies it once per flow method), and the worker waits for those to finish
before each item, and a caption between its decoding steps (`give_way`; at most BACKGROUND_YIELD_S, so that a
steady stream of requests cannot starve it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.profile import UserProfile

log = logging.getLogger("vitrine")

__all__ = ["AssetWorker", "gated", "BACKGROUND_BATCH_S", "BACKGROUND_BATCH_ASSETS", "BACKGROUND_YIELD_S", "MAX_QUEUED"]

BACKGROUND_BATCH_S = 0.5  # the background worker records what it made at least this often
BACKGROUND_BATCH_ASSETS = 16  # ... and at most this many assets per transaction, so that one write holds the
# database (SQLite's single writer) briefly even when best-of-N makes several candidates per item
BACKGROUND_YIELD_S = 0.5  # the longest the background worker waits for interactive requests to finish
MAX_QUEUED = 400  # items waiting for the background worker (50 slates of 8); past it the oldest jobs are dropped

Job = tuple[str, list[str], "UserProfile | None"]


class AssetWorker:
    """Makes the slate assets of queued (user, items) jobs with `make_item(item_id, profile) -> assets` and records
    each batch with `record(assets, user_id or None)`; `after_batch()` runs after every batch (the quota check)."""

    def __init__(self, make_item: Callable[[str, "UserProfile | None"], list[Any]],
                 record: Callable[[Sequence[Any], str | None], Any],
                 after_batch: Callable[[], Any] | None = None, *, max_queued: int = MAX_QUEUED) -> None:
        self._make_item = make_item
        self._record = record
        self._after_batch = after_batch
        self.max_queued = max_queued
        self.dropped = 0  # items dropped from a full queue since start (the Status tab shows it)
        self._jobs: deque[Job] = deque()  # waiting for a screen, oldest first
        self._prefetch: deque[Job] = deque()  # waiting for a next page, oldest first: made when _jobs is empty
        self._pending: set[tuple[str, str]] = set()  # (user_id, item_id) queued or being made
        self._work = threading.Condition(threading.Lock())
        self._closed = False
        # the threads answering interactive requests, with how many each (a thread may nest `interactive`); the
        # worker waits for none
        self._answering: Counter[int] = Counter()
        self._quiet = threading.Condition(threading.Lock())
        self._thread = threading.Thread(target=self._run, name="vitrine-assets", daemon=True)
        self._thread.start()

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the worker (queued jobs are dropped); wait up to `wait_s` for the item being made to be done."""
        with self._work:
            self._closed = True
            self._jobs.clear()
            self._prefetch.clear()
            self._work.notify_all()
        if wait_s > 0 and self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    # -- the gate between interactive requests and the worker --------------------------------------------------
    @contextlib.contextmanager
    def interactive(self) -> Iterator[None]:
        """Mark an interactive request (a slate, a like) being answered: background generation gives way."""
        me = threading.get_ident()
        with self._quiet:
            self._answering[me] += 1
        try:
            yield
        finally:
            with self._quiet:
                self._answering[me] -= 1
                if not self._answering[me]:
                    del self._answering[me]
                if not self._answering:
                    self._quiet.notify_all()

    def give_way(self) -> None:
        """Wait (at most BACKGROUND_YIELD_S) while interactive requests are being answered, unless this thread is
        answering one itself (Create's own caption must not wait for itself). A model that decodes step by step
        calls it between steps (the worker's captions, the keyword thread's lists), so a page answered in the
        middle of a caption does not share the interpreter with the decoding loop (one Python step per token
        holds the GIL between the runtime's calls)."""
        with self._quiet:
            if threading.get_ident() in self._answering:
                return
        self._wait_for_quiet()

    def _wait_for_quiet(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: not self._answering, timeout=BACKGROUND_YIELD_S)

    # -- the queue ---------------------------------------------------------------------------------------------
    def generate_later(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None", *,
                       prefetch: bool = False) -> int:
        """Queue the slate cover and caption of each item for `user_id`, as one job (`prefetch`: for a page not
        shown yet, made after every screen's job); returns how many were queued (items already queued are
        skipped). Past `max_queued` items the oldest waiting jobs are dropped, prefetched ones first (a visitor
        who asks again queues them again)."""
        with self._work:
            todo = [i for i in dict.fromkeys(item_ids) if (user_id, i) not in self._pending]
            if not todo or self._closed:
                return 0
            self._pending.update((user_id, i) for i in todo)
            (self._prefetch if prefetch else self._jobs).append((user_id, todo, profile))
            while len(self._pending) > self.max_queued and len(self._prefetch) + len(self._jobs) > 1:
                lane = self._prefetch if self._prefetch else self._jobs
                old_user, old_items, _ = lane.popleft()
                self._pending.difference_update((old_user, i) for i in old_items)
                self.dropped += len(old_items)
                log.warning("asset queue full: dropped %d queued items of user %s", len(old_items), old_user)
            self._work.notify()
        return len(todo)

    @property
    def queued_items(self) -> int:
        """Items queued or being made right now."""
        with self._work:
            return len(self._pending)

    def pending(self, user_id: str, item_ids: Sequence[str]) -> list[str]:
        """Which of the items are still queued (or being made) for this user."""
        with self._work:
            return [i for i in item_ids if (user_id, i) in self._pending]

    def wait_for(self, user_id: str, item_ids: Sequence[str], timeout: float) -> bool:
        """Block until none of the items is queued for this user any more (made, dropped or failed), or until
        `timeout` seconds; True when none is left."""
        deadline = time.monotonic() + timeout
        with self._work:
            return self._work.wait_for(lambda: not any((user_id, i) in self._pending for i in item_ids),
                                       timeout=max(0.0, deadline - time.monotonic()))

    # -- the thread --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._work:
                self._work.wait_for(lambda: self._jobs or self._prefetch or self._closed)
                if self._closed:
                    return
                prefetch = not self._jobs
                user_id, item_ids, profile = (self._prefetch if prefetch else self._jobs).popleft()
            self._make_job(user_id, item_ids, profile, prefetch)

    def _screen_waiting(self) -> bool:
        with self._work:
            return bool(self._jobs)

    def _make_job(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None",
                  prefetch: bool = False) -> None:
        """Make each item's assets, recorded one transaction per batch. A batch closes once BACKGROUND_BATCH_S of
        generating has passed, so a slow model's covers still appear one by one, while quick ones (the fallbacks,
        milliseconds each) cost one write per slate, not two per item; and once it holds BACKGROUND_BATCH_ASSETS
        assets, so each write is short."""
        todo = list(item_ids)
        while todo:
            if prefetch and self._screen_waiting():  # a screen's job came in: the rest of this one waits for it
                with self._work:
                    self._prefetch.appendleft((user_id, todo, profile))
                    self._work.notify()
                return
            batch: list[str] = []
            assets: list[Any] = []
            deadline = time.monotonic() + BACKGROUND_BATCH_S
            try:
                while todo and (not batch or (time.monotonic() < deadline and len(assets) < BACKGROUND_BATCH_ASSETS
                                              and not (prefetch and self._screen_waiting()))):
                    self._wait_for_quiet()
                    batch.append(todo.pop(0))
                    assets.extend(self._make_item(batch[-1], profile))
                self._record(assets, user_id if profile is not None else None)
            except Exception:  # noqa: BLE001 - a background job has nobody to raise to: log it
                log.exception("background generation of %s for user %s failed", batch, user_id)
            finally:
                with self._work:
                    self._pending.difference_update((user_id, i) for i in batch)
                    self._work.notify_all()
            if self._after_batch is not None:
                try:
                    self._after_batch()
                except Exception:  # noqa: BLE001 - tried again after the next batch: log it
                    log.exception("after a background batch: %s failed", getattr(self._after_batch, "__name__", "?"))


def gated(method: Callable) -> Callable:
    """Run a method of an object with an `assets` attribute (`app.serving.assets.Assets`) as an interactive
    request: the background worker gives way while it runs."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with self.assets.worker.interactive():
            return method(self, *args, **kwargs)

    return wrapper
