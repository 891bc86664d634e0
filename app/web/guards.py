"""Bounds on what one client can make the app do: per-client rates of the calls that cost the most (slates queue
covers and captions; generation runs a model), password guesses, Gradio's queue, and the log lines a rejection
costs. The ASGI middlewares that check a request before the app reads it are `app.web.middleware`.

- `RateLimits`: moving-window limits per client and kind, kept in memory by the `limits` package. A client is its
  address; behind the one-port proxy (`trust_proxy`), the address the proxy saw, which the proxy appends last to
  X-Forwarded-For (earlier entries are whatever the client sent, and are ignored).
- `RejectionLog` (`rejections`): one short log line per rejected request, at a bounded rate.
- `PasswordGuard`: password guesses throttled per client and per target (admin, label, dashboard), each logged.
- `bound_queue`: Gradio's own queue, bounded (events waiting in all, per client, joins per client) and kept alive
  when a flood of sessions that never read their messages pushes waiting visitors out of Gradio's session cache.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.errors import AppInputError

__all__ = ["RateLimits", "RejectionLog", "SessionMessages", "bound_queue", "client_key", "rejections", "PasswordGuard",
           "password_ok"]

log = logging.getLogger("vitrine")


class RejectionLog:
    """One short line per rejected request, at most `per_minute` lines a minute; the rest are counted and reported
    in one line when the next minute opens. A flood of bad requests costs a bounded log."""

    def __init__(self, logger: logging.Logger, per_minute: int = 60, max_chars: int = 200,
                 clock: Any = None) -> None:
        import threading
        import time

        self.logger = logger
        self.per_minute = per_minute
        self.max_chars = max_chars
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Open a fresh minute: nothing counted, nothing dropped."""
        self._window, self._logged, self._dropped = -60.0, 0, 0

    def note(self, what: str) -> None:
        with self._lock:
            now = self.clock()
            if now - self._window >= 60:
                if self._dropped:
                    self.logger.warning("rejected %d more requests in the last minute (not logged one by one)",
                                        self._dropped)
                self._window, self._logged, self._dropped = now, 0, 0
            if self._logged >= self.per_minute:
                self._dropped += 1
                return
            self._logged += 1
        if len(what) > self.max_chars:
            what = what[: self.max_chars - 3] + "..."
        self.logger.info("rejected %s", what.encode("unicode_escape", "backslashreplace").decode("ascii"))


rejections = RejectionLog(log)  # process-wide, like the log itself; `enable_queue` sets its rate


def client_key(request: Any, trust_proxy: bool) -> str:
    """Who is asking: the proxy-seen address (last X-Forwarded-For entry) behind a trusted proxy, else the peer."""
    if request is None:
        return "local"  # an in-process call (tests, benchmarks): one client
    if trust_proxy:
        forwarded = (request.headers.get("x-forwarded-for") or "").split(",")
        if forwarded[-1].strip():
            return forwarded[-1].strip()
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


class PasswordGuard:
    """Password checks throttled per (client, target) and per target (every client together), with each attempt
    logged. Only wrong guesses count. Once a client has made `per_client` wrong guesses at a target within the
    window, or all clients `per_target`, every attempt at it is refused without comparing, the right password
    included (a guesser who hits it during the lockout learns nothing), until the window moves on. The per-target
    bound holds against guesses spread over many addresses; its price is that such a flood also locks the rightful
    user out for a while. Attempts are logged as one line each ("password admin from 1.2.3.4: wrong"); refused ones
    through `rejections` (at a bounded rate)."""

    def __init__(self, per_client: str = "5/minute", per_target: str = "30/minute",
                 logger: logging.Logger | None = None) -> None:
        from limits import parse, storage, strategies

        self._per_client, self._per_target = parse(per_client), parse(per_target)
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.logger = logger or log

    def check(self, target: str, given: object, expected: str, client: str) -> bool:
        """True when `given` is `expected`; `AppInputError` when guesses at `target` are throttled."""
        import time

        from app.settings import password_matches

        for limit, key in ((self._per_client, client), (self._per_target, "*")):
            if not self._limiter.test(limit, "password", target, key):
                reset = self._limiter.get_window_stats(limit, "password", target, key).reset_time
                wait = max(1, int(reset - time.time()))
                who = "this client" if key == client else "all clients together"
                rejections.note(f"password {target} from {client}: throttled ({who})")
                raise AppInputError(f"too many wrong passwords for {target} from {who}: at most {limit}; "
                                    f"try again in {wait} s")
        ok = password_matches(given, expected)
        if not ok:
            self._limiter.hit(self._per_client, "password", target, client)
            self._limiter.hit(self._per_target, "password", target, "*")
        self.logger.info("password %s from %s: %s", target, client.encode("unicode_escape").decode("ascii")[:60],
                         "accepted" if ok else "wrong")
        return ok


class RateLimits:
    """Moving-window limits per (client, kind); `check` raises `AppInputError` when a client is over its rate."""

    def __init__(self, rates: Mapping[str, str], trust_proxy: bool = False) -> None:
        from limits import parse, storage, strategies

        self._limits = {kind: parse(rate) for kind, rate in rates.items()}
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.trust_proxy = trust_proxy

    def check(self, request: Any, kind: str) -> None:
        limit = self._limits[kind]
        key = client_key(request, self.trust_proxy)
        if not self._limiter.hit(limit, kind, key):
            reset = self._limiter.get_window_stats(limit, kind, key).reset_time
            import time

            wait = max(1, int(reset - time.time()))
            raise AppInputError(f"too many requests: at most {limit} per client for {kind}; try again in {wait} s")


class SessionMessages(dict):
    """Gradio's per-session message queues (`Queue.pending_messages_per_session`), bounded like Gradio's own
    `LRUCache(2000)` but evicting the oldest session that has no event waiting or running.

    Gradio 6.31 (gradio/queueing.py) evicts the oldest session whatever it holds. A client that joins with fresh
    session hashes and never reads them pushes out the sessions of visitors whose events still wait; the next
    status broadcast (`Queue.broadcast_estimations` -> `Queue.send_message`, `self.pending_messages_per_session[
    event.session_hash]`) raises `KeyError` in `Queue.start_processing`, whose `finally` sets `stopped`: from then on
    every join answers `503 Queue is stopped.`. A session with an event waiting or running is never evicted here
    (there are at most `max_size` waiting events and `max_thread_count` running ones, far fewer than `max_size`
    sessions), and an evicted session's record of unread event ids (`pending_event_ids_session`) goes with it, so
    sessions that are never read cost bounded memory."""

    def __init__(self, queue: Any, max_size: int) -> None:
        super().__init__()
        self.queue = queue
        self.max_size = int(max_size)

    def busy(self) -> set[str]:
        """The sessions with an event waiting in the queue or running."""
        waiting = (event for q in self.queue.event_queue_per_concurrency_id.values() for event in q.queue)
        running = (event for job in self.queue.active_jobs if job for event in job)
        return {event.session_hash for events in (waiting, running) for event in events}

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self and len(self) >= self.max_size:
            busy = self.busy()
            oldest = next((k for k in self if k not in busy), None)
            if oldest is None:  # every session busy: cannot happen while max_size > waiting + running events
                oldest = next(iter(self))
            del self[oldest]
            self.queue.pending_event_ids_session.pop(oldest, None)
        super().__setitem__(key, value)


def bound_queue(demo: Any, *, max_size: int, per_client: int | None = None, join_rate: str | None = None,
                trust_proxy: bool = False) -> None:
    """Bound the queue of `demo` (after `demo.queue()`, before `launch`):

    - at most `max_size` events wait in all (Gradio's own `max_size`: 503 "Queue is full" above it);
    - at most `per_client` of them come from one client, and one client may join at most `join_rate` times
      (both 429, keyed like `RateLimits`), so that no single client can fill the queue (None: no such bound);
    - the session cache never evicts a session with an event waiting or running (`SessionMessages`), and a
      message for a session that is gone anyway is dropped instead of stopping the queue;
    - a join must name an event that runs server code (422 otherwise; Gradio answered fn_index -1 with a 500).
    """
    from fastapi import HTTPException

    queue = demo._queue
    if max_size + queue.max_thread_count >= queue.pending_messages_per_session.max_size:
        raise ValueError(f"max_size must leave room in Gradio's session cache "
                         f"({queue.pending_messages_per_session.max_size} sessions) for the "
                         f"{queue.max_thread_count} running events, got {max_size}")
    queue.max_size = max_size
    sessions = SessionMessages(queue, queue.pending_messages_per_session.max_size)
    sessions.update(queue.pending_messages_per_session)
    queue.pending_messages_per_session = sessions

    send_message = queue.send_message

    def send_or_drop(event: Any, message: Any) -> None:
        if event.alive and event.session_hash not in queue.pending_messages_per_session:
            event.alive = False  # nobody can read this event's messages any more
            return
        send_message(event, message)

    queue.send_message = send_or_drop

    limits = RateLimits({"join": join_rate}, trust_proxy=trust_proxy) if join_rate is not None else None
    push = queue.push

    async def bounded_push(body: Any, request: Any, username: Any) -> Any:
        fn = demo.fns.get(body.fn_index) if isinstance(body.fn_index, int) else None
        if fn is None or fn.fn is None:  # Gradio: KeyError (a 500 and a traceback), or an error with no message
            detail = (f"fn_index: expected the index of one of the app's events (0 to {max(demo.fns, default=0)}) "
                      f"that runs server code, got {body.fn_index!r}")
            rejections.note(f"join: 422 {detail}")
            raise HTTPException(status_code=422, detail=detail)
        if limits is not None:
            try:
                limits.check(request, "join")
            except AppInputError as exc:
                rejections.note(f"join: 429 {exc}")
                raise HTTPException(status_code=429, detail=str(exc)) from None
        key = client_key(request, trust_proxy)
        waiting = sum(1 for q in queue.event_queue_per_concurrency_id.values() for event in q.queue
                      if client_key(event.request, trust_proxy) == key)
        if per_client is not None and waiting >= per_client:
            rejections.note(f"join: 429 {per_client} events of {key} waiting")
            raise HTTPException(status_code=429, detail=f"too many waiting events: at most {per_client} per "
                                                        "client in the queue; wait for the earlier ones")
        return await push(body, request, username)

    queue.push = bounded_push


def password_ok(svc: Any, target: str, given: object, expected: str, request: Any = None) -> bool:
    """`given` is `expected`, checked through the services' `PasswordGuard` (throttled per client and per target,
    logged): `AppInputError` when this client, or everyone, guessed wrong too often at `target` lately."""
    return svc.passwords.check(target, given, expected, client_key(request, svc.settings.trust_proxy))
