"""Bounds on what one client can make the app do: request body size, and per-client rates of the calls that
cost the most (slates queue covers and captions; generation runs a model).

- `BodyLimit`: an ASGI middleware answering 413 to a body over `max_bytes` (by its Content-Length, or while a
  chunked body streams in), before the app reads it. The reverse proxy caps bodies too; this holds without one.
- `RateLimits`: moving-window limits per client and kind, kept in memory by the `limits` package. A client is its
  address; behind the one-port proxy (`trust_proxy`), the address the proxy saw, which the proxy appends last to
  X-Forwarded-For (earlier entries are whatever the client sent, and are ignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from app.errors import AppInputError

__all__ = ["BodyLimit", "EncodableJson", "RateLimits", "client_key"]


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
            await self._too_large(send)
            return
        if length is None:  # a chunked body: read it here (at most max_bytes), then hand it on
            chunks, seen = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    await self._too_large(send)
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            await self.app(scope, _replaying(b"".join(chunks), receive), send)
            return
        await self.app(scope, receive, send)

    async def _too_large(self, send: Any) -> None:
        await _refuse(send, 413, f"request body larger than {self.max_bytes} bytes")


async def _refuse(send: Any, status: int, detail: str) -> None:
    """Answer with `status` and a JSON {"detail": ...}, without calling the app."""
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


class EncodableJson:
    """ASGI middleware: 400 for a JSON request Gradio cannot encode back: text with lone surrogates ("\\ud800",
    which JSON may escape and Python decodes) or integers beyond 64 bits. Gradio would fail deep inside, with no
    message for the client. Placed inside `BodyLimit`, so the body it reads is bounded."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or scope.get("method") != "POST" or b"json" not in headers.get(b"content-type", b""):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        problem = _json_problem(body) if (b"\\ud" in body.lower() or _LONG_NUMBER.search(body)) else None
        if problem:
            await _refuse(send, 400, problem)
            return
        await self.app(scope, _replaying(body, receive), send)


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
