"""Bounds on what one client can make the app do: request body size, and per-client rates of the calls that
cost the most (slates queue covers and captions; generation runs a model).

- `BodyLimit`: an ASGI middleware answering 413 to a body over `max_bytes` (by its Content-Length, or while a
  chunked body streams in), before the app reads it. The reverse proxy caps bodies too; this holds without one.
- `RateLimits`: moving-window limits per client and kind, kept in memory by the `limits` package. A client is its
  address; behind the one-port proxy (`trust_proxy`), the address the proxy saw, which the proxy appends last to
  X-Forwarded-For (earlier entries are whatever the client sent, and are ignored).
- `ClosedRoutes`: 404 for Gradio's /monitoring pages (open to anyone otherwise) and for its component server when
  no component has server functions.
- `ApiCalls`: 404 / 400 for a call by endpoint name that names no endpoint or does not fit its parameters.
- `QueueReads`: 404 at once for a read of Gradio's queue naming no session or event it holds.
- `UploadGate`: Gradio's file routes refused (403) when no event of the app takes a file, else bounded per client.
- `RejectionLog` (`rejections`): one short log line per rejected request, at a bounded rate.
- `PasswordGuard`: password guesses throttled per client and per target (admin, label, dashboard), each logged.
- `bound_queue`: Gradio's own queue, bounded (events waiting in all, per client, joins per client) and kept alive
  when a flood of sessions that never read their messages pushes waiting visitors out of Gradio's session cache.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from app.errors import AppInputError

__all__ = ["BodyLimit", "EncodableJson", "RateLimits", "RejectionLog", "SessionMessages", "UploadGate", "bound_queue",
           "client_key", "media_type", "rejections", "takes_uploads", "ApiCalls", "ClosedRoutes", "PasswordGuard",
           "QueueReads"]

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


class BodyLimit:
    """ASGI middleware: 413 for an HTTP request body larger than `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, send)
            return
        if length is None:  # a chunked body: read it here (at most max_bytes), then hand it on
            chunks, seen = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    await self._too_large(scope, send)
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            await self.app(scope, _replaying(b"".join(chunks), receive), send)
            return
        await self.app(scope, receive, send)

    async def _too_large(self, scope: dict, send: Any) -> None:
        await _refuse(scope, send, 413, f"request body larger than {self.max_bytes} bytes")


async def _refuse(scope: dict, send: Any, status: int, detail: str) -> None:
    """Answer with `status` and a JSON {"detail": ...}, without calling the app; one line in the log (bounded)."""
    rejections.note(f"{scope.get('method')} {scope.get('path')}: {status} {detail}")
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body (None when the client went away)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class UploadGate:
    """ASGI middleware for Gradio's file routes (POST /gradio_api/upload, /gradio_api/process_recording): 403 when
    no event of the app takes a file as input (Gradio accepts and keeps any upload otherwise, in its temp dir);
    when one does, at most `bytes_per_hour` per client (429), counted by Content-Length (a chunked body counts as
    `max_body_bytes`, the most `BodyLimit` lets through)."""

    PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")

    def __init__(self, app: Any, bytes_per_hour: int, max_body_bytes: int, trust_proxy: bool = False) -> None:
        from limits import RateLimitItemPerHour, storage, strategies

        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.trust_proxy = trust_proxy
        self._limit = RateLimitItemPerHour(int(bytes_per_hour))
        self._limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())  # a counter, whatever the cost
        self._allowed: dict[int, bool] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or not scope.get("path", "").rstrip("/").endswith(self.PATHS)):
            await self.app(scope, receive, send)
            return
        blocks = scope["app"].get_blocks()
        if id(blocks) not in self._allowed:
            self._allowed[id(blocks)] = takes_uploads(blocks)
        if not self._allowed[id(blocks)]:
            await _refuse(scope, send, 403, "this app takes no file uploads")
            return
        from starlette.requests import Request

        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        cost = int(length) if length.isdigit() else self.max_body_bytes
        key = client_key(Request(scope), self.trust_proxy)
        if not self._limiter.hit(self._limit, "upload", key, cost=max(1, cost)):
            await _refuse(scope, send, 429, f"too many uploads: at most {self._limit.amount} bytes per client per hour")
            return
        await self.app(scope, receive, send)


class ClosedRoutes:
    """ASGI middleware: 404 for Gradio's routes this app does not use and would otherwise serve to anyone:
    `/monitoring...` (its analytics summary, open without a login), and `/gradio_api/component_server` when no
    component of the app has server functions (Gradio answered some bodies there with a 500)."""

    PREFIXES = ("/monitoring",)
    SERVER_FNS = "/gradio_api/component_server"

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server_fns: dict[int, bool] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        closed = path.startswith(self.PREFIXES)
        if path.rstrip("/").endswith(self.SERVER_FNS):
            blocks = scope["app"].get_blocks()
            if id(blocks) not in self._server_fns:
                self._server_fns[id(blocks)] = any(getattr(b, "server_fns", None) for b in blocks.blocks.values())
            closed = not self._server_fns[id(blocks)]
        if closed:
            await _refuse(scope, send, 404, "Not Found")
            return
        await self.app(scope, receive, send)


class ApiCalls:
    """ASGI middleware for Gradio's calls by endpoint name (POST /gradio_api/call/<name>, /call/v2/<name>,
    /run/<name>, /api/<name>): a name that is no endpoint answers 404, and a body Gradio cannot map onto the
    endpoint's parameters 400. Gradio raises FnIndexInferError, KeyError or TypeError there before it answers,
    which was a 500 and a traceback in the log."""

    PATTERN = re.compile(r"/gradio_api/(call/v2|call|run|api)/([^/]+)/?$")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        found = (self.PATTERN.search(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST"
                 else None)
        if found is None:
            await self.app(scope, receive, send)
            return
        from gradio.route_utils import FnIndexInferError

        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except (FnIndexInferError, KeyError) as exc:
            if started:
                raise
            await _refuse(scope, send, 404, f"api_name: no endpoint named {found.group(2)[:60]!r} ({type(exc).__name__})")
        except (TypeError, ValueError) as exc:
            if started:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            await _refuse(scope, send, 400, f"{found.group(2)[:60]}: the body does not fit its parameters: {first[:150]}")


class QueueReads:
    """ASGI middleware: 404 at once for a read of Gradio's queue that names no session or event it holds
    (GET /gradio_api/queue/data?session_hash=..., /gradio_api/call/<api>/<event id>). Gradio finds that out inside
    the stream it has already started answering, and logs the failure as a traceback: one per anonymous request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" and scope.get("method") == "GET" else ""
        queue = getattr(scope.get("app"), "get_blocks", lambda: None)()
        queue = getattr(queue, "_queue", None)
        if queue is not None and path.endswith("/gradio_api/queue/data"):
            from urllib.parse import parse_qs

            session = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [""])[0]
            if session not in queue.pending_messages_per_session:
                await _refuse(scope, send, 404, "session_hash: no such session in the queue (join it first)")
                return
        elif queue is not None and re.search(r"/gradio_api/call/(v2/)?[^/]+/[^/]+/?$", path):
            event_id = path.rstrip("/").rsplit("/", 1)[-1]
            known = event_id in queue.event_ids_to_events or any(
                event_id in ids for ids in list(queue.pending_event_ids_session.values()))
            if not known:
                await _refuse(scope, send, 404, "event_id: no such event in the queue (or its result was read)")
                return
        await self.app(scope, receive, send)


def takes_uploads(blocks: Any) -> bool:
    """True when an event of `blocks` has an input component that a browser uploads files to (File, Image, Audio,
    Video, Gallery, MultimodalTextbox, ...: any whose data holds Gradio's FileData)."""
    import gradio as gr

    inputs = {id(component) for fn in blocks.fns.values() for component in fn.inputs}
    return any(id(c) in inputs and (isinstance(c, (gr.File, gr.UploadButton)) or _holds_files(type(c)))
               for c in blocks.blocks.values())


def _holds_files(component_type: type) -> bool:
    model = getattr(component_type, "data_model", None)
    try:
        return model is not None and "FileData" in json.dumps(model.model_json_schema())
    except (AttributeError, TypeError):  # a property, or a model without a JSON schema: no FileData to send
        return False


class EncodableJson:
    """ASGI middleware: 400 for a JSON request Gradio cannot encode back: text with lone surrogates ("\\ud800",
    which JSON may escape and Python decodes) or integers beyond 64 bits. Gradio would fail deep inside, with no
    message for the client. Every POST body is checked but forms (multipart, urlencoded): FastAPI parses a body
    as JSON under any spelling of the media type (`application/JSON`, `+json`) and without one. Placed inside
    `BodyLimit`, so the body it reads is bounded."""

    FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or scope.get("method") != "POST" or media_type(headers) in self.FORMS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:  # FastAPI would parse it as JSON and fail with a 500
            await _refuse(scope, send, 400, "request body: expected JSON in UTF-8, got bytes that are not UTF-8")
            return
        problem = _json_problem(body) if (b"\\ud" in body.lower() or _LONG_NUMBER.search(body)) else None
        if problem:
            await _refuse(scope, send, 400, problem)
            return
        await self.app(scope, _replaying(body, receive), send)


def media_type(headers: Mapping[bytes, bytes]) -> bytes:
    """The request's media type, lower case, without parameters (`Application/JSON; charset=x` -> application/json)."""
    return headers.get(b"content-type", b"").split(b";")[0].strip().lower()


def _replaying(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


_LONG_NUMBER = re.compile(rb"\d{19,}")  # an integer this long may not fit 64 bits


def _json_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be handed to Gradio (lone surrogates, integers beyond 64 bits), or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None  # not JSON at all: the app answers that itself
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "request text holds lone surrogates (e.g. \\ud800): send valid UTF-8 text"
    if _has_huge_int(data):
        return f"request holds an integer outside the 64-bit range [{-(2**63)}, {2**64 - 1}]"
    return None


def _has_huge_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**64
    if isinstance(value, dict):
        return any(_has_huge_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge_int(v) for v in value)
    return False


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
