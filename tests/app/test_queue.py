"""Gradio's queue under a flood (issue 28 item 1), on loopback only.

Gradio 6.31 keeps one message queue per session in an LRU of 2,000 sessions (`Queue.pending_messages_per_session`,
gradio/queueing.py). A client that joins with fresh session hashes and never reads `/gradio_api/queue/data`
pushes the sessions of visitors whose events still wait out of it; the next status broadcast
(`Queue.broadcast_estimations` -> `send_message`) then raises `KeyError` inside `Queue.start_processing`, whose
`finally` sets `stopped`, and every later join for everyone answers `503 Queue is stopped` while `/config` still
answers 200.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid

import pytest
import requests

from vitrine_app_fixtures import free_port, make_services

TIMEOUT_S = 60
HOLD_S = 600  # the longest the flood test holds a generation (the flood takes about a minute on a busy 2-core box)


@pytest.fixture()
def flood_app(tmp_path):
    """The app on a free port behind a (pretend) trusted proxy, so that a test can speak as many clients:
    (url, demo, services)."""
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    services = make_services(tmp_path, trust_proxy=True)
    demo = build_demo(services)
    enable_queue(demo, services.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(services))
    yield f"http://127.0.0.1:{port}/", demo, services
    demo.close()
    services.close()


def _fn_index(url: str, api_name: str) -> int:
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    return next(i for i, dep in enumerate(config["dependencies"]) if dep.get("api_name") == api_name)


def _join(url: str, fn_index: int, data: list, session: str, client: str, http=requests) -> requests.Response:
    return http.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session},
                     headers={"X-Forwarded-For": client}, timeout=TIMEOUT_S)


def _result(url: str, session: str) -> dict:
    """Read the session's stream up to its process_completed message (or what ended it)."""
    with requests.get(url + "gradio_api/queue/data", params={"session_hash": session}, stream=True,
                      timeout=TIMEOUT_S) as stream:
        if stream.status_code != 200:
            return {"http": stream.status_code}
        for raw in stream.iter_lines():
            line = raw.decode("utf-8")
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_completed", "unexpected_error"):
                    return message
    return {"closed": True}


def test_a_flood_of_unread_joins_leaves_the_queue_serving_everyone(flood_app, monkeypatch):
    url, demo, svc = flood_app
    started, release = threading.Event(), threading.Event()
    make = svc.assets.variants.create

    def slow_generation(*args, **kwargs):  # a real cover model takes seconds on a CPU: hold it until the flood ends
        started.set()
        release.wait(HOLD_S)
        return make(*args, **kwargs)

    monkeypatch.setattr(svc.assets.variants, "create", slow_generation)
    covers, cheap = _fn_index(url, "generate_covers"), _fn_index(url, "on_select")
    # four visitors ask for covers: one runs (held), three wait behind it in the generation group
    visitors = [f"visitor-{i}" for i in range(4)]
    for i, session in enumerate(visitors):
        assert _join(url, covers, ["5", "3", 2, i], session, f"10.1.0.{i}").status_code == 200
    assert started.wait(TIMEOUT_S)

    # the flood: more fresh sessions than Gradio keeps, never read, from many addresses (a botnet, or one client
    # below every per-client bound); each join is cheap and completes, only the sessions pile up
    bound = demo._queue.pending_messages_per_session.max_size
    local = threading.local()

    def flood(i: int) -> int:
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        return _join(url, cheap, [], uuid.uuid4().hex, f"10.2.{i // 40 // 250}.{i // 40 % 250}", http).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(flood, range(bound + 100)))
    finally:
        release.set()
    assert codes.count(200) > bound  # the flood really got in

    for session in visitors:  # the waiting visitors get their covers
        outcome = _result(url, session)
        assert outcome.get("msg") == "process_completed" and outcome.get("success"), (session, outcome)
    assert not demo._queue.stopped
    later = "later-visitor"  # and a visitor who comes afterwards is served
    assert _join(url, _fn_index(url, "recommend"), ["5", "ease", 3, False], later, "10.3.0.1").status_code == 200
    assert _result(url, later).get("success")


@pytest.fixture()
def held_app(tmp_path):
    """A one-endpoint Gradio app queued like the app (`enable_queue`), whose endpoint waits until released:
    yields a factory `start(**settings overrides) -> (url, release)`."""
    import gradio as gr

    from app.web.launch import enable_queue
    from vitrine_app_fixtures import make_settings

    demos, releases = [], []

    def start(**overrides):
        release = threading.Event()

        def hold(x: str) -> str:
            release.wait(TIMEOUT_S)
            return x

        with gr.Blocks() as demo:
            gr.api(hold, api_name="hold", concurrency_limit=1)
        enable_queue(demo, make_settings(tmp_path, **{"trust_proxy": True, **overrides}))
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        releases.append(release)
        return f"http://127.0.0.1:{port}/", release

    yield start
    for release in releases:
        release.set()
    for demo in demos:
        demo.close()


def test_one_client_cannot_fill_the_queue(held_app):
    url, _ = held_app(queue_per_client=2, queue_max=3)
    answers = [_join(url, 0, ["a"], uuid.uuid4().hex, "10.0.0.1") for _ in range(4)]  # one runs, two wait
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "at most 2 per client" in answers[-1].json()["detail"]
    assert _join(url, 0, ["b"], uuid.uuid4().hex, "10.0.0.2").status_code == 200  # another client may
    full = _join(url, 0, ["c"], uuid.uuid4().hex, "10.0.0.3")  # three wait: the queue is full for everyone
    assert full.status_code == 503 and "Queue is full" in full.json()["detail"]


def test_joins_per_client_are_rate_limited(held_app):
    url, release = held_app(rate_join="3/minute")
    release.set()
    assert [_join(url, 0, ["a"], uuid.uuid4().hex, "10.0.0.1").status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = _join(url, 0, ["a"], uuid.uuid4().hex, "10.0.0.1").json()["detail"]
    assert "too many requests: at most 3 per 1 minute" in refused and "for join" in refused
    assert _join(url, 0, ["a"], uuid.uuid4().hex, "10.0.0.2").status_code == 200


def test_the_health_check_runs_an_event_and_fails_when_the_queue_stops(flood_app):
    import subprocess
    import sys

    from serve_helpers import REPO_ROOT

    url, demo, _ = flood_app

    def healthcheck() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "healthcheck.py"), "--url", url,
                               "--timeout", "20"], capture_output=True, text=True, timeout=TIMEOUT_S)

    assert healthcheck().returncode == 0
    demo._queue.close()  # what Queue.start_processing's `finally` does when it dies
    assert requests.get(url + "config", timeout=TIMEOUT_S).status_code == 200  # the page still answers
    stopped = healthcheck()
    assert stopped.returncode == 1 and "Queue is stopped" in stopped.stderr


def test_no_event_runs_outside_the_queue(live_app):
    """Gradio opens /gradio_api/run/<name> (and /api/<name>) to direct POSTs when not on a Space: an event run
    there skipped the queue and every bound on it (size, per-client joins, concurrency groups)."""
    url, _ = live_app
    for route in ("run", "api"):
        answer = requests.post(url + f"gradio_api/{route}/recommend", json={"data": ["5", "ease", 3, False]},
                               timeout=TIMEOUT_S)
        assert answer.status_code == 404 and "join the queue" in answer.json()["detail"], answer.text[:300]
    unknown = requests.post(url + "gradio_api/call/no-such-endpoint", json={"data": []}, timeout=TIMEOUT_S)
    assert unknown.status_code == 404 and "no endpoint named" in unknown.json()["detail"]
