"""The one public port is nginx (deploy/nginx.conf.template), started by `scripts/serve_all.py` under honcho.

Issue 14: no open proxy (a request target never picks the upstream), bodies over the cap get 413 before the app
sees them, the forwarded headers are nginx's own (a client's X-Forwarded-Host cannot rewrite the app's root URL),
Streamlit's websocket is upgraded for the site's own pages only; and, in Chromium, the app at `/` (Gradio's queue
streaming through nginx) and the dashboard at `/dashboard/` with its websocket live.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from deploy.render import RunConfig, render, render_run_dir
from deploy_helpers import (
    DASHBOARD_PASSWORD, REPO_ROOT, SERVE_ALL, STANDIN, STOPPABLE_APP, child_pids, free_port, get, need_nginx, pid_alive,
    raw_request, start_serve_all, stop, wait_ok,
)

MARKER = "vitrine-secret-upstream-7f3a"


# ----------------------------------------------------------------------------------------------- rendering
def test_render_fills_every_placeholder(tmp_path):
    text = render(RunConfig(host="127.0.0.1", port=8080, app_port=40001, dashboard_port=40002, max_body="2m",
                            public_scheme="https"), tmp_path)
    assert "@" not in "".join(line.split("#")[0] for line in text.splitlines())  # no placeholder left
    assert "listen 127.0.0.1:8080 default_server;" in text
    assert "server 127.0.0.1:40001;" in text and "server 127.0.0.1:40002;" in text
    assert "client_max_body_size 2m;" in text and "default https;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text
    assert "set_real_ip_from" not in text  # no proxy in front is trusted unless named
    assert "rate=5r/s;" in text and "burst=30 nodelay;" in text and "limit_conn vitrine_conn 64;" in text
    assert "frame-ancestors 'self'\" always;" in text and "X-Frame-Options SAMEORIGIN" in text
    space = render(RunConfig(frame_ancestors="'self' https://huggingface.co"), tmp_path)
    assert "frame-ancestors 'self' https://huggingface.co\" always;" in space
    assert "add_header X-Frame-Options" not in space  # it cannot name another site: the CSP alone says who may
    trusted = render(RunConfig(trusted_proxy="10.0.0.0/8"), tmp_path)
    assert "set_real_ip_from 10.0.0.0/8;" in trusted and "real_ip_header X-Forwarded-For;" in trusted


@pytest.mark.parametrize("field, value", [
    ("max_body", "16m; include /etc/passwd"), ("max_body", "0"), ("host", "0.0.0.0; evil"), ("host", "example.com"),
    ("port", 0), ("app_port", 70000), ("public_scheme", "ftp"), ("trusted_proxy", "10.0.0.0/8; allow all"),
    ("join_rate", "5r/s; allow all"), ("join_rate", "0r/s"), ("join_burst", 0), ("conn_per_client", "64; x"),
    ("frame_ancestors", "'self'; script-src *"), ("frame_ancestors", '"'), ("frame_ancestors", ""),
])
def test_render_refuses_values_that_are_not_what_they_claim(field, value):
    with pytest.raises(ValueError, match=field):
        RunConfig(**{field: value})


def test_render_refuses_unknown_placeholders_and_odd_run_dirs(tmp_path):
    with pytest.raises(ValueError, match="unknown placeholders"):
        render(RunConfig(), tmp_path, template="listen @PORT@; root @ROOT@;")
    with pytest.raises(ValueError, match="run_dir"):
        render(RunConfig(), tmp_path / "a b")


def test_rendered_config_is_valid_nginx():
    nginx = need_nginx()
    run_dir = render_run_dir(RunConfig(host="127.0.0.1", port=free_port(), app_port=free_port(),
                                       dashboard_port=free_port()))
    try:
        check = subprocess.run([nginx, "-t", "-e", "stderr", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    finally:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


def test_serve_all_is_a_launcher_without_proxy_code():
    source = SERVE_ALL.read_text()
    for proxy_piece in ("httpx", "uvicorn", "websockets", "asyncio", "build_request"):
        assert proxy_piece not in source
    assert "honcho" in source and "nginx" in source


# ------------------------------------------------------------------------------------------ the front, live
class _Secret(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits += 1
        body = MARKER.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def secret_server():
    """A loopback-only server the front must never reach; yields its port."""
    _Secret.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_request_targets_cannot_reach_other_servers(front, secret_server):
    """Issue 14 item 2: `@host:port/x` made the old proxy fetch `http://127.0.0.1:PORT@host:port/x`."""
    _, port, _, _ = front
    secret = secret_server
    assert get(f"http://127.0.0.1:{secret}/x")[1] == MARKER  # reachable directly: the test can fail
    _Secret.hits = 0
    ws_headers = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: streamlit\r\n")
    targets = [
        (f"@127.0.0.1:{secret}/x", ""), (f"@127.0.0.1:{secret}/dashboard/x", ""),
        (f"http://127.0.0.1:{secret}/x", ""), (f"//127.0.0.1:{secret}/x", ""),
        (f"@127.0.0.1:{secret}/dashboard/_stcore/stream", ws_headers),
        (f"http://127.0.0.1:{secret}/dashboard/_stcore/stream", ws_headers),
    ]
    for target, extra in targets:
        answer = raw_request(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
                                   "Connection: close\r\n\r\n".encode(), timeout=2)
        assert answer.startswith(b"HTTP/1.1 "), (target, answer[:200])
        assert MARKER.encode() not in answer, target
    assert _Secret.hits == 0
    # a target that is not origin- or absolute-form is refused outright
    assert raw_request(port, f"GET @127.0.0.1:{secret}/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()).startswith(
        b"HTTP/1.1 400")


def test_bodies_over_the_cap_get_413_before_the_app(front):
    """Issue 14 item 3 (front side): nginx's cap is the app's own (VITRINE_MAX_BODY_BYTES, default 1 MiB); a
    larger body is refused by nginx itself (its error page), so the app behind never receives it."""
    import urllib.error
    import urllib.request

    base, _, _, _ = front

    def post(size: int) -> tuple[int, str]:
        request = urllib.request.Request(base + "/gradio_api/upload", data=b"x" * size, method="POST",
                                         headers={"Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    status, body = post(2**20 + 1)
    assert status == 413 and "nginx" in body
    status, body = post(2**20 - 4096)
    assert status not in (413, 502, 503) and "nginx" not in body  # reaches the app (which wants a form)


def test_joins_and_open_requests_per_client_are_bounded(front):
    """Issue 28 item 1 (front side): one client's joins of Gradio's queue beyond the burst, and its open requests
    beyond `limit_conn`, get 429 from nginx itself, unlogged; reads (GET) are not joins."""
    import concurrent.futures
    import http.client

    base, port, _, log = front
    before = log.read_text()

    def join(_: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/gradio_api/queue/join", body=b"{}", headers={"Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
        return status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(join, range(80)))
    assert statuses.count(429) >= 80 - 30 - 20 and statuses.count(422) >= 30  # the app answered the burst
    assert all(get(base + "/config")[0] == 200 for _ in range(40))  # GETs are not joins
    streams = []
    try:  # server-sent-event streams stay open: the 65th request at once is refused
        for _ in range(70):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/gradio_api/heartbeat/bounded", headers={"Accept": "text/event-stream"})
            streams.append((conn, conn.getresponse()))
        assert [r.status for _, r in streams].count(429) == 70 - 64
    finally:
        for conn, _ in streams:
            conn.close()
    assert "limiting" not in log.read_text()[len(before):]  # refusals are not logged
    time.sleep(7)  # the burst refills (5 joins a second) for the other tests of this module


SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin",
                    "x-frame-options": "SAMEORIGIN"}


def test_every_answer_carries_the_security_headers(front):
    """Issue 28 item 8: a CSP (this site's scripts, images and connections only; frame-ancestors), nosniff, a
    same-origin referrer and X-Frame-Options, once each, on the app, the dashboard and the front's own errors."""
    import urllib.request

    base, _, _, _ = front
    for path in ("/", "/config", "/dashboard/", "/dashboard/_stcore/health", "/gradio_api/info", "/nope"):
        try:
            answer = urllib.request.urlopen(base + path, timeout=30)
        except urllib.error.HTTPError as exc:
            answer = exc
        headers = answer.headers
        for name, value in SECURITY_HEADERS.items():
            assert headers.get_all(name) == [value], (path, name, headers.get_all(name))
        csp = headers.get_all("content-security-policy")
        assert csp and len(csp) == 1, (path, csp)
        assert "default-src 'self'" in csp[0] and "img-src 'self' data: blob:" in csp[0]
        assert "frame-ancestors 'self'" in csp[0] and "object-src 'none'" in csp[0]


def test_monitoring_and_metrics_are_closed(front):
    """Gradio's /monitoring (its analytics summary) and Streamlit's /_stcore/metrics answered anyone."""
    base, _, _, _ = front
    for path in ("/monitoring", "/monitoring/summary", "/monitoring/x", "/dashboard/_stcore/metrics"):
        assert get(base + path)[0] == 404, path
    assert get(base + "/dashboard/_stcore/health")[0] == 200


def test_forwarded_headers_are_set_by_nginx_only(front):
    """Issue 14 item 12: a client's X-Forwarded-Host (or X-Gradio-Server, Forwarded) does not move the root URL."""
    base, _, _, _ = front
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example",
              "X-Gradio-Server": "http://evil.example"}
    status, body = get(base + "/config", headers=forged)
    assert status == 200
    assert json.loads(body)["root"] == base
    status, page = get(base + "/", headers=forged)
    assert status == 200 and "evil.example" not in page


def test_streamlit_websocket_is_upgraded_for_this_site_only(front):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    base, _, _, _ = front
    ws_url = base.replace("http://", "ws://") + "/dashboard/_stcore/stream"

    async def open_with(origin):
        async with connect(ws_url, subprotocols=["streamlit"], origin=origin, open_timeout=30) as ws:
            return ws.subprotocol

    assert asyncio.run(open_with(base)) == "streamlit"
    assert asyncio.run(open_with(None)) == "streamlit"  # not a browser: no Origin
    for origin in ("https://evil.example", f"http://evil.example:{base.rsplit(':', 1)[1]}"):
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(open_with(origin))
        assert refused.value.response.status_code == 403


def test_gradio_queue_streams_through_nginx(front):
    from gradio_client import Client

    base, _, _, _ = front
    assert Client(base + "/", verbose=False).predict("hi", api_name="/shout") == "HI"


ECHO_APP = """
import http.server, json, os
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer((os.environ["GRADIO_SERVER_NAME"], int(os.environ["GRADIO_SERVER_PORT"])), Echo).serve_forever()
"""


@pytest.mark.parametrize("trusted", [None, "127.0.0.1/32"])
def test_upstream_headers_are_nginx_own(tmp_path, trusted):
    """What the app receives, echoed: one X-Forwarded-For address (the peer's, or behind a trusted proxy the last
    one that proxy appended; never what the client wrote before it), the Host the request came to, and none of
    the client's own X-Forwarded-Host, Forwarded or X-Gradio-Server."""
    need_nginx()
    (tmp_path / "echo.py").write_text(ECHO_APP)
    (tmp_path / "dash.py").write_text("import streamlit as st\nst.write('tiny')\n")
    port = free_port()
    log = tmp_path / "serve_all.log"
    extra = ["--trusted-proxy", trusted] if trusted else []
    proc = start_serve_all(port, log, {**os.environ, "VITRINE_TRUSTED_PROXY": "none"}, "--app-cmd",
                           f"{sys.executable} {tmp_path / 'echo.py'}", "--dashboard-script", str(tmp_path / "dash.py"),
                           *extra)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ok(base + "/", proc)
        status, body = get(base + "/x", headers={
            "X-Forwarded-For": "6.6.6.6, 7.7.7.7", "X-Forwarded-Host": "evil.example", "X-Real-IP": "6.6.6.6",
            "Forwarded": "for=6.6.6.6;host=evil.example", "X-Gradio-Server": "http://evil.example"})
        assert status == 200
        seen = json.loads(body)
        assert seen["x-forwarded-for"] == ("7.7.7.7" if trusted else "127.0.0.1")
        assert seen["x-real-ip"] == seen["x-forwarded-for"]
        assert seen["host"] == seen["x-forwarded-host"] == f"127.0.0.1:{port}"
        assert seen["x-forwarded-proto"] == "http"
        assert "forwarded" not in seen and "x-gradio-server" not in seen
    finally:
        stop(proc, log)


@pytest.mark.browser
def test_browser_sees_app_and_live_dashboard(front, browser, artifacts_dir):
    """Chromium: the Gradio app at `/` answers a click (its queue's server-sent events through nginx); the
    dashboard at `/dashboard/` opens its websocket through nginx and re-renders after the password is typed."""
    base, _, _, _ = front
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(base + "/")
        page.get_by_label("text").fill("through nginx")
        page.get_by_role("button", name="Shout").click()
        page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value === 'THROUGH NGINX')")
        page.screenshot(path=str(artifacts_dir / "front-app.png"))

        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws))
        page.goto(base + "/dashboard/")
        page.get_by_label("Password", exact=True).fill(DASHBOARD_PASSWORD)  # answered only through the websocket
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Overview").first.wait_for()
        stream = [ws for ws in sockets if ws.url.endswith("/dashboard/_stcore/stream")]
        assert stream and stream[-1].url.startswith(base.replace("http://", "ws://"))
        assert not stream[-1].is_closed()
        page.screenshot(path=str(artifacts_dir / "front-dashboard.png"))
        assert not errors, errors
    finally:
        context.close()


# ---------------------------------------------------------------------------------------- process lifecycle
def test_a_dead_child_stops_the_others(tmp_path):
    need_nginx()
    port = free_port()
    log = tmp_path / "serve_all.log"
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where serve_all makes its run directory
    proc = start_serve_all(port, log, env, "--app-cmd", f"{sys.executable} -c 'raise SystemExit(3)'",
                           "--dashboard-script", str(tmp_path / "none.py"))
    try:
        assert proc.wait(timeout=60) != 0
        text = log.read_text()
        assert "app" in text and "stopped (rc=3)" in text
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in child_pids(log).values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(pid_alive(pid) for pid in child_pids(log).values()), "a child outlived serve_all"
        assert not list(tmp_path.glob("vitrine-serve-*"))  # the run directory is removed
    finally:
        stop(proc, log)


def test_sigterm_stops_every_child(tmp_path):
    """Even with an endless server-sent-events stream (Gradio's heartbeat) left open by a gone browser."""
    import http.client
    import signal

    need_nginx()
    script = tmp_path / "tiny_dashboard.py"
    script.write_text("import streamlit as st\nst.write('tiny')\n")
    port = free_port()
    log = tmp_path / "serve_all.log"
    proc = start_serve_all(port, log, None, "--app-cmd", f"{sys.executable} {STANDIN}", "--dashboard-script",
                           str(script))
    try:
        wait_ok(f"http://127.0.0.1:{port}/dashboard/_stcore/health", proc)
        wait_ok(f"http://127.0.0.1:{port}/", proc)
        pids = child_pids(log)
        assert set(pids) == {"nginx", "app", "dashboard", "health"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/gradio_api/heartbeat/test-session", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200 and "text/event-stream" in response.getheader("content-type", "")
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(pid_alive(pid) for pid in pids.values()), "a child outlived serve_all"
    finally:
        stop(proc, log)


def test_refuses_a_bad_body_cap_before_starting_anything(tmp_path):
    need_nginx()
    result = subprocess.run([sys.executable, str(SERVE_ALL), "--port", str(free_port()), "--max-body", "1m; evil"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "max_body" in result.stderr


def test_a_stopped_queue_makes_the_set_exit_for_a_restart(tmp_path):
    """Issue 28 item 1: a queue that stopped leaves the app process up and its page answering 200; the health
    watchdog (a real event every VITRINE_HEALTH_INTERVAL_S) sees it and the whole set exits non-zero."""
    need_nginx()
    (tmp_path / "app.py").write_text(STOPPABLE_APP)
    (tmp_path / "dash.py").write_text("import streamlit as st\nst.write('tiny')\n")
    port = free_port()
    log = tmp_path / "serve_all.log"
    env = {**os.environ, "VITRINE_HEALTH_INTERVAL_S": "1", "VITRINE_HEALTH_RETRIES": "2"}
    proc = start_serve_all(port, log, env, "--app-cmd", f"{sys.executable} {tmp_path / 'app.py'}",
                           "--dashboard-script", str(tmp_path / "dash.py"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ok(base + "/dashboard/_stcore/health", proc)
        wait_ok(base + "/", proc)
        time.sleep(3)  # a few healthy checks
        assert proc.poll() is None
        import requests

        joined = requests.post(base + "/gradio_api/call/stop_queue", json={"data": []}, timeout=30)
        assert joined.status_code == 200  # its result is "Server stopped unexpectedly": the queue stopped under it
        assert get(base + "/")[0] == 200  # the page still answers
        assert proc.wait(timeout=60) != 0
        text = log.read_text()
        assert "Queue is stopped" in text and "healthcheck: unhealthy" in text
    finally:
        stop(proc, log)


TINY_APP = REPO_ROOT / "tests" / "deploy" / "tiny_vitrine_app.py"


class _Beacon(http.server.BaseHTTPRequestHandler):
    hits: list = []
    page = b""

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        body = type(self).page
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.browser
def test_the_real_app_and_dashboard_run_under_the_csp(tmp_path, browser, artifacts_dir):
    """Issue 28 item 8, in Chromium behind the front: the real UI (tiny catalog) and the dashboard work under the
    Content-Security-Policy with no violation logged: cards, a like, Create's gallery (by URL), the dashboard's
    charts over its websocket. An error pop-up quoting HTML a visitor typed shows it as text and loads nothing
    from elsewhere; another site cannot frame the pages."""
    from annotation.db import upgrade

    need_nginx()
    data = tmp_path / "data"
    data.mkdir()
    upgrade(f"sqlite:///{data / 'vitrine.db'}")
    env = {**os.environ, "VITRINE_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'vitrine.db'}",
           "VITRINE_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD}
    port = free_port()
    log = tmp_path / "serve_all.log"
    proc = start_serve_all(port, log, env, "--app-cmd", f"{sys.executable} {TINY_APP}")
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Beacon)  # another site: a beacon, a framing page
    threading.Thread(target=other.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}"
    base = f"http://127.0.0.1:{port}"
    _Beacon.hits, _Beacon.page = [], f'<iframe id="f" src="{base}/"></iframe>'.encode()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    try:
        wait_ok(base + "/dashboard/_stcore/health", proc)
        wait_ok(base + "/", proc)
        page.goto(base + "/")
        page.click("#vt-user input")
        page.keyboard.type("6")  # an id typed, then Enter (the page's own script, allowed by the policy)
        page.keyboard.press("Enter")
        page.wait_for_selector("#vt-card-0 .vt-card img")  # gr.HTML templates ran (they need eval)
        page.click("#vt-card-0 button[data-action=like]")  # the card's own button (its js_on_load ran)
        page.wait_for_selector("#vt-card-0 .vt-liked")
        page.get_by_role("tab", name="Create").click()
        page.click("#vt-create-item input")
        page.keyboard.type("film 3")
        page.wait_for_function("() => (document.querySelector('#vt-create-item [role=option]') || {}).innerText"
                               "?.startsWith('Sci-Fi Film 3 ')")  # the search's answer
        page.keyboard.press("Enter")
        page.click("#vt-generate")
        page.wait_for_function("() => [...document.querySelectorAll('#vt-gallery img')].filter("
                               "i => i.complete && i.naturalWidth > 0).length >= 2")
        sources = page.eval_on_selector_all("#vt-gallery img", "els => els.map(e => e.src)")
        assert all(src.startswith(base + "/covers/") for src in sources), sources
        page.screenshot(path=str(artifacts_dir / "front-csp-create.png"))

        page.get_by_role("tab", name="Label").click()
        typed = f'hf:<img id="vt-beacon" src="{elsewhere}/beacon.png">'
        page.fill("#vt-ann-name textarea, #vt-ann-name input", typed)
        page.click("#vt-sign-in")
        toast = page.locator("[data-testid='toast-body']").first
        toast.wait_for()
        assert typed in toast.inner_text() and page.locator("#vt-beacon").count() == 0
        page.screenshot(path=str(artifacts_dir / "front-csp-error.png"))

        page.goto(base + "/dashboard/")
        page.get_by_label("Password", exact=True).fill(DASHBOARD_PASSWORD)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Overview").first.wait_for()
        page.wait_for_selector(".js-plotly-plot .main-svg")
        page.screenshot(path=str(artifacts_dir / "front-csp-dashboard.png"))
        violations = [m for m in console if "Content Security Policy" in m or m.startswith("pageerror")]
        assert not violations, violations

        page.goto(elsewhere + "/frame")
        page.wait_for_timeout(3000)
        framed = page.frame_locator("#f").locator("#vt-user")
        assert framed.count() == 0  # refused: frame-ancestors 'self'
        assert any("frame-ancestors" in m or "Refused to display" in m for m in console), console[-5:]
        assert not [h for h in _Beacon.hits if "beacon" in h]
    finally:
        context.close()
        other.shutdown()
        stop(proc, log)
