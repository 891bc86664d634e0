"""ASGI middlewares in front of Gradio: what a request may be before the app reads it.

- `BodyLimit`: 413 for a body over `max_bytes` (by its Content-Length, or while a chunked body streams in), before
  the app reads it. The reverse proxy caps bodies too; this holds without one.
- `EncodableJson`: a JSON body is parsed and checked (any spelling of its media type; no lone surrogates, no
  integer too long for 64 bits) before Gradio sees it: 400 with one short message otherwise.
- `UploadGate`: Gradio's file routes refused (403) when no event of the app takes a file, else bounded per client.
- `ClosedRoutes`: 404 for Gradio's /monitoring pages (open to anyone otherwise) and for its component server when
  no component has server functions.
- `ApiCalls`: 404 / 400 for a call by endpoint name that names no endpoint or does not fit its parameters.
- `QueueReads`: 404 at once for a read of Gradio's queue naming no session or event it holds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from app.web.guards import client_key, rejections

__all__ = ["BodyLimit", "EncodableJson", "UploadGate", "ClosedRoutes", "ApiCalls", "QueueReads", "media_type",
           "takes_uploads"]

log = logging.getLogger("vitrine")


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
