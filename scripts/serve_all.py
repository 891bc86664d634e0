#!/usr/bin/env python
"""One public port for the whole of Vitrine: the Gradio app at `/`, the Streamlit dashboard at `/dashboard/`.

This is the container's entry point (see the Dockerfile), and works the same without a container:

    python scripts/serve_all.py                      # public port: $PORT, else 7860; binds 0.0.0.0
    python scripts/serve_all.py --port 8080 --host 127.0.0.1

It starts two child processes on private loopback ports

    app        `python -m app`                (GRADIO_SERVER_NAME/PORT point it at its private port)
    dashboard  `streamlit run app/dashboard.py --server.baseUrlPath=dashboard`

and serves a small reverse proxy (an ASGI app on uvicorn) in front of them: `/dashboard` and everything
under it goes to Streamlit, the rest to Gradio. Plain HTTP responses are streamed (Gradio's server-sent
events pass through as they are produced) and websockets (Streamlit's `/_stcore/stream`) are bridged frame
by frame. When either child exits, the proxy stops the other and exits with an error, so a container
supervisor restarts the whole thing; SIGTERM/SIGINT stop everything cleanly.

Only pinned dependencies are used: uvicorn, httpx and websockets (all already required by gradio/streamlit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_PREFIX = "/dashboard"  # where the dashboard lives on the public port (Streamlit's baseUrlPath)
GRACEFUL_SHUTDOWN_S = 10  # on SIGTERM, open connections (a websocket, a stream) get this long to finish

# Headers that describe one hop, not the message (RFC 9110 section 7.6.1), plus the ones httpx recomputes.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "content-length",
}
# Headers the websockets client sets itself during the opening handshake.
WS_HANDSHAKE = {
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
    "sec-websocket-extensions", "origin", "content-length",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Backends:
    app: str  # base URL of the Gradio app, e.g. http://127.0.0.1:40001
    dashboard: str  # base URL of Streamlit, e.g. http://127.0.0.1:40002

    def pick(self, path: str) -> str:
        if path == DASHBOARD_PREFIX or path.startswith(DASHBOARD_PREFIX + "/"):
            return self.dashboard
        return self.app


def _same_origin(headers: dict[str, str]) -> bool:
    """A browser's websocket must come from a page on this very host (no cross-site websocket hijacking)."""
    origin = headers.get("origin")
    if origin is None:  # non-browser clients send none
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class Proxy:
    """The ASGI reverse proxy. One httpx client (connection pool) for the process, made in the lifespan."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.client = None  # httpx.AsyncClient, created on startup

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        import httpx

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _target(base: str, scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path") or scope["path"].encode()
        path = path.decode("latin-1") if isinstance(path, bytes) else path
        return base + path + (f"?{query}" if query else "")

    async def _http(self, scope, receive, send) -> None:
        import httpx

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in HOP_BY_HOP]
        client = scope.get("client")
        host = next((v for k, v in headers if k.lower() == "host"), "")
        headers += [("x-forwarded-for", client[0] if client else ""), ("x-forwarded-host", host),
                    ("x-forwarded-proto", scope.get("scheme", "http"))]
        base = self.backends.pick(scope["path"])
        request = self.client.build_request(scope["method"], self._target(base, scope), headers=headers,
                                            content=bytes(body))
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            which = "dashboard" if base == self.backends.dashboard else "app"
            text = f"Vitrine's {which} is not answering yet ({type(exc).__name__}); retry in a few seconds.\n"
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"5")]})
            await send({"type": "http.response.body", "body": text.encode()})
            return

        async def relay() -> None:
            out_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()
                           if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():  # raw: content-encoding (gzip) passes through untouched
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        # A server-sent-events stream (Gradio's heartbeat, its queue) never ends by itself: stop relaying as soon
        # as the browser goes away, or the task (and the upstream connection) would live until shutdown, and
        # block it.
        tasks = [asyncio.create_task(relay()), asyncio.create_task(client_gone())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is tasks[0]:
                    task.result()  # re-raise a relay error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await response.aclose()

    async def _websocket(self, scope, receive, send) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not _same_origin(headers):
            await send({"type": "websocket.close", "code": 1008, "reason": "cross-origin websocket refused"})
            return
        base = self.backends.pick(scope["path"]).replace("http://", "ws://", 1)
        forwarded = [(k, v) for k, v in headers.items() if k not in WS_HANDSHAKE]
        try:
            upstream = await connect(self._target(base, scope), subprotocols=scope.get("subprotocols") or None,
                                     additional_headers=forwarded, max_size=None, compression=None,
                                     user_agent_header=None, open_timeout=30)
        except (OSError, InvalidHandshake, asyncio.TimeoutError):
            await send({"type": "websocket.close", "code": 1011, "reason": "backend unavailable"})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def client_to_backend() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                data = msg.get("bytes") if msg.get("bytes") is not None else msg.get("text")
                if data is not None:
                    await upstream.send(data)

        async def backend_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    key = "bytes" if isinstance(data, bytes) else "text"
                    await send({"type": "websocket.send", key: data})
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code})

        tasks = [asyncio.create_task(client_to_backend()), asyncio.create_task(backend_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await upstream.close()


def _make_server(config):
    """A uvicorn Server that, unlike uvicorn's, does not re-raise SIGTERM/SIGINT after shutting down: that
    would kill this process before it stops its children (they would be orphaned)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


def child_commands(app_port: int, dashboard_port: int, python: str = sys.executable,
                   app_cmd: list[str] | None = None, dashboard_script: str = "app/dashboard.py"
                   ) -> dict[str, tuple[list[str], dict[str, str]]]:
    """The two children to start, each as (argv, extra environment)."""
    app_env = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(app_port)}
    dashboard_argv = [
        python, "-m", "streamlit", "run", dashboard_script,
        "--server.address", "127.0.0.1", "--server.port", str(dashboard_port),
        "--server.baseUrlPath", DASHBOARD_PREFIX.strip("/"), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    return {"app": (app_cmd or [python, "-m", "app"], app_env), "dashboard": (dashboard_argv, {})}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("VITRINE_PUBLIC_HOST", "0.0.0.0"),
                        help="public interface (default 0.0.0.0, or $VITRINE_PUBLIC_HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 7860),
                        help="public port (default $PORT, else 7860)")
    parser.add_argument("--app-cmd", default=None,
                        help="command that serves the Gradio app (default: python -m app); it must honour "
                             "GRADIO_SERVER_NAME and GRADIO_SERVER_PORT")
    parser.add_argument("--dashboard-script", default="app/dashboard.py", help="the Streamlit script")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    import shlex

    import uvicorn

    args = parse_args(argv)
    app_port, dashboard_port = free_port(), free_port()
    backends = Backends(app=f"http://127.0.0.1:{app_port}", dashboard=f"http://127.0.0.1:{dashboard_port}")
    commands = child_commands(app_port, dashboard_port, app_cmd=shlex.split(args.app_cmd) if args.app_cmd else None,
                              dashboard_script=args.dashboard_script)
    env = {k: v for k, v in os.environ.items() if k != "PORT"}  # PORT is ours; children get private ports
    children: dict[str, subprocess.Popen] = {}
    for name, (cmd, extra) in commands.items():
        print(f"serve_all: starting {name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        children[name] = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**env, **extra})

    config = uvicorn.Config(Proxy(backends), host=args.host, port=args.port, log_level="warning",
                            ws_max_size=256 * 2**20, proxy_headers=False, lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = _make_server(config)
    exit_code = 0

    async def watch_children() -> None:
        nonlocal exit_code
        while not server.should_exit:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(f"serve_all: {name} exited with {proc.returncode}; stopping", file=sys.stderr, flush=True)
                    exit_code = 1
                    server.should_exit = True
                    return
            await asyncio.sleep(0.5)

    async def run() -> None:
        watcher = asyncio.create_task(watch_children())
        print(f"serve_all: http://{args.host}:{args.port}/ (app) and /dashboard/ (dashboard)", file=sys.stderr,
              flush=True)
        await server.serve()  # SIGINT/SIGTERM set should_exit; then the children are stopped below
        watcher.cancel()

    try:
        asyncio.run(run())
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
