"""`scripts/serve_all.py`, the container's entry, without the container: one public port, the app at `/`,
the dashboard under `/dashboard/`, Streamlit's websocket and Gradio's server-sent events through the proxy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from dash_helpers import REPO_ROOT, STANDIN, free_port, get, wait_ok

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import serve_all  # noqa: E402

def test_routing_and_origin_rules():
    backends = serve_all.Backends(app="http://app", dashboard="http://dash")
    assert backends.pick("/") == "http://app"
    assert backends.pick("/gradio_api/queue/join") == "http://app"
    assert backends.pick("/dashboard") == "http://dash"
    assert backends.pick("/dashboard/_stcore/stream") == "http://dash"
    assert backends.pick("/dashboards-are-not-this") == "http://app"
    assert serve_all._same_origin({"host": "localhost:7860", "origin": "http://localhost:7860"})
    assert serve_all._same_origin({"host": "localhost:7860"})  # no Origin: not a browser
    assert not serve_all._same_origin({"host": "localhost:7860", "origin": "https://evil.example"})
    with pytest.raises(SystemExit):
        serve_all.parse_args(["--port", "0"])


def test_one_port_serves_app_and_dashboard(served):
    base, _ = served
    status, body = get(base + "/")
    assert status == 200 and "gradio" in body.lower()
    status, body = get(base + "/dashboard/")
    assert status == 200 and "<noscript>" in body.lower()  # Streamlit's single-page shell
    assert get(base + "/dashboard/_stcore/health") == (200, "ok")


def test_gradio_queue_streams_through_the_proxy(served):
    from gradio_client import Client

    base, _ = served
    client = Client(base + "/", verbose=False)
    assert client.predict("hi", api_name="/shout") == "HI"


def test_streamlit_websocket_passes_through_and_cross_origin_is_refused(served):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    base, _ = served
    ws_url = base.replace("http://", "ws://") + "/dashboard/_stcore/stream"

    async def open_same_origin():
        async with connect(ws_url, subprotocols=["streamlit"], origin=base, open_timeout=30) as ws:
            return ws.subprotocol

    async def open_cross_origin():
        async with connect(ws_url, subprotocols=["streamlit"], origin="https://evil.example", open_timeout=30):
            return True

    assert asyncio.run(open_same_origin()) == "streamlit"
    with pytest.raises(InvalidStatus):
        asyncio.run(open_cross_origin())


def test_a_dead_child_stops_the_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "serve_all.py"), "--host", "127.0.0.1", "--port", str(port),
         "--app-cmd", f"{sys.executable} -c 'raise SystemExit(3)'", "--dashboard-script", str(tmp_path / "none.py")],
        cwd=REPO_ROOT, start_new_session=True, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1
    assert "exited with" in err


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_the_children_too(tmp_path):
    """Even after a browser left an endless server-sent-events stream (Gradio's heartbeat) behind."""
    import http.client

    script = tmp_path / "tiny_dashboard.py"
    script.write_text("import streamlit as st\nst.write('tiny')\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "serve_all.py"), "--host", "127.0.0.1", "--port", str(port),
         "--app-cmd", f"{sys.executable} {STANDIN}", "--dashboard-script", str(script)],
        cwd=REPO_ROOT, start_new_session=True,
    )
    try:
        wait_ok(f"http://127.0.0.1:{port}/dashboard/_stcore/health", proc)
        wait_ok(f"http://127.0.0.1:{port}/", proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/gradio_api/heartbeat/test-session", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200 and "text/event-stream" in response.getheader("content-type", "")
        conn.close()  # the "browser" leaves; the stream itself never ends
        time.sleep(1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - started < serve_all.GRACEFUL_SHUTDOWN_S  # not the graceful-shutdown backstop
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(proc.pid), "a child of serve_all outlived it"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_dockerfile_runs_this_entry_on_the_port_it_exposes():
    """No Docker engine here: check what the image would run against the script tested above."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "scripts/serve_all.py"]' in dockerfile
    assert "EXPOSE 7860" in dockerfile and "PORT=7860" in dockerfile
    assert serve_all.parse_args([]).port == int(os.environ.get("PORT") or 7860)
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".venv", ".vitrine", "artifacts", ".git"):
        assert path in ignored  # no local state or data (ml-100k must not be redistributed) in the image
