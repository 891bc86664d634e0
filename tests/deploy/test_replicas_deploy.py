"""The front and the launcher with several app replicas (issue 24 item 3), without the app: the rendered upstream
(a consistent hash on the route cookie, the servers taken out on failure), nginx's routing over two stand-in
servers (sticky by cookie, by address without one, a dead server passed over), `serve_all.py --replicas`'s
refusals (SQLite, a per-process blob store), and `scripts/replica.py` (a crash loop ends it, a stopped queue
restarts the app, SIGTERM stops it). The whole set on PostgreSQL with the real app: tests/app/test_replicas_front.py.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from deploy.render import RunConfig, render, render_run_dir
from deploy_helpers import REPO_ROOT, SERVE_ALL, STOPPABLE_APP, free_port, need_nginx, pid_alive

REPLICA = REPO_ROOT / "scripts" / "replica.py"
ROUTE = re.compile(r"^vitrine_route=([0-9a-f]{32}); Path=/; HttpOnly; SameSite=Lax$")


# ----------------------------------------------------------------------------------------------- rendering
def test_one_app_renders_as_before(tmp_path):
    text = render(RunConfig(app_port=40001), tmp_path)
    assert "server 127.0.0.1:40001;" in text
    assert "hash $vitrine_route" not in text and "add_header Set-Cookie" not in text
    assert "add_header X-Vitrine-Replica" not in text


def test_replicas_render_a_sticky_upstream(tmp_path):
    text = render(RunConfig(app_port=40001, replica_ports=(40003, 40004), public_scheme="https"), tmp_path)
    upstream = text[text.index("upstream vitrine_app {"):text.index("upstream vitrine_dashboard")]
    assert upstream.index("hash $vitrine_route consistent;") < upstream.index("keepalive 16;")
    for port in (40001, 40003, 40004):
        assert f"server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;" in upstream
    assert '"~(^|, )127\\.0\\.0\\.1:40004$" 3;' in text  # the replica that answered, by number
    assert "add_header Set-Cookie $vitrine_route_cookie;" in text
    assert "SameSite=Lax; Secure" in text  # https: the route cookie is sent over TLS only


@pytest.mark.parametrize("ports", [(40001,), (40002, 70000), tuple(range(41000, 41016)), [40002], (True,)])
def test_replica_ports_are_checked(ports):
    with pytest.raises(ValueError, match="replica_ports"):
        RunConfig(app_port=40001, replica_ports=ports)


# ------------------------------------------------------------------------------------------ nginx, live
class _Named(http.server.BaseHTTPRequestHandler):
    """Answers every GET and POST with its server's name."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

    def log_message(self, *args):
        pass


def _named_server(name: str) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    server.name = name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def two_replicas():
    """nginx rendered for two app replicas, each a server answering its name; yields (port, servers)."""
    nginx = need_nginx()
    servers = {"1": _named_server("one"), "2": _named_server("two")}
    port = free_port()
    run_dir = render_run_dir(RunConfig(host="127.0.0.1", port=port, app_port=servers["1"].server_address[1],
                                       replica_ports=(servers["2"].server_address[1],), dashboard_port=free_port()))
    proc = subprocess.Popen([nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf"),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _request(port, "GET", "/x")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.1)
        yield port, servers
    finally:
        proc.terminate()
        proc.wait(10)
        for server in servers.values():
            server.shutdown()
            server.server_close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _request(port: int, method: str, path: str, cookie: str | None = None) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of one request to the front, on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Cookie": f"vitrine_route={cookie}"} if cookie else {}
    conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    return answer.status, body, {k.lower(): v for k, v in answer.getheaders()}


def test_a_page_load_draws_a_route_that_keeps_the_visitor_on_one_replica(two_replicas):
    port, _ = two_replicas
    names = {"1": "one", "2": "two"}
    routes: dict[str, list[str]] = {"1": [], "2": []}
    for _ in range(40):
        status, body, headers = _request(port, "GET", "/config")
        route = ROUTE.match(headers["set-cookie"]).group(1)
        assert status == 200 and body == names[headers["x-vitrine-replica"]]
        routes[headers["x-vitrine-replica"]].append(route)
    assert routes["1"] and routes["2"]  # page loads spread over both (2^-39 to miss one)
    for replica, drawn in routes.items():
        for route in drawn[:3]:
            for method, path in [("GET", "/"), ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/queue/data"),
                                 ("POST", "/gradio_api/call/feedback"), ("GET", "/gradio_api/call/feedback/e1")]:
                status, body, headers = _request(port, method, path, cookie=route)
                assert (status, body, headers["x-vitrine-replica"]) == (200, names[replica], replica), (method, path)
                assert "set-cookie" not in headers  # the route is kept, not drawn again


def test_without_a_cookie_the_queue_is_routed_by_address(two_replicas):
    """An API client that never loaded a page: its join and its stream still meet (one address, one replica)."""
    port, _ = two_replicas
    seen = {_request(port, method, path)[2]["x-vitrine-replica"]
            for method, path in [("POST", "/gradio_api/call/recommend"), ("GET", "/gradio_api/call/recommend/e1"),
                                 ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/info")] * 5}
    assert len(seen) == 1
    for forged in ("x", "0" * 31, "G" * 32, "1" * 33):  # not a route the front draws: a page load draws a new one
        headers = _request(port, "GET", "/", cookie=forged)[2]
        assert ROUTE.match(headers["set-cookie"])


def test_a_dead_replica_is_passed_over_and_its_visitors_served_by_the_other(two_replicas):
    port, servers = two_replicas
    route = None
    while route is None:
        headers = _request(port, "GET", "/config")[2]
        if headers["x-vitrine-replica"] == "1":
            route = ROUTE.match(headers["set-cookie"]).group(1)
    servers["1"].shutdown()
    servers["1"].server_close()  # its port refuses connections now: a killed replica
    for method, path in [("GET", "/"), ("POST", "/gradio_api/call/feedback")] * 4:
        status, body, headers = _request(port, method, path, cookie=route)
        assert (status, body, headers["x-vitrine-replica"]) == (200, "two", "2"), (method, path)


# ------------------------------------------------------------------------------------------ serve_all refusals
@pytest.mark.parametrize("env, message", [
    ({}, "needs PostgreSQL: set DATABASE_URL"),
    ({"DATABASE_URL": "sqlite:////tmp/x.db"}, "needs PostgreSQL"),
    ({"DATABASE_URL": "postgresql+psycopg://u@h/d", "VITRINE_BLOB_URL": "memory://b"}, "blob store every replica sees"),
])
def test_replicas_are_refused_where_they_cannot_share_the_stores(env, message):
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VITRINE_BLOB_URL", "VITRINE_REPLICAS")}
    result = subprocess.run([sys.executable, str(SERVE_ALL), "--port", str(free_port()), "--replicas", "2"],
                            cwd=REPO_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "password" not in result.stderr


def test_a_replica_set_runs_the_procfiles_replica_line_per_replica():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        from serve_all import ONCE_ONLY, processes
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    procfile = {name: name.upper() for name in ("nginx", "app", "dashboard", "health", "replica", "dashboard-health")}
    env = {"VITRINE_SYNC_URL": "/sink", "VITRINE_RETRAIN_EVERY_EVENTS": "100", "OTHER": "x"}
    one = processes(procfile, env, (7861,))
    assert [name for name, _, _ in one] == ["nginx", "app", "dashboard", "health"]
    three = {name: (cmd, e) for name, cmd, e in processes(procfile, env, (7861, 7862, 7863))}
    assert set(three) == {"nginx", "dashboard", "dashboard-health", "app.1", "app.2", "app.3"}
    assert [three[f"app.{n}"][1]["VITRINE_APP_PORT"] for n in (1, 2, 3)] == ["7861", "7862", "7863"]
    assert three["app.1"][0] == "REPLICA" and three["app.1"][1]["VITRINE_REPLICA_AFTER"] == ""
    assert three["app.3"][1]["VITRINE_REPLICA_AFTER"] == "http://127.0.0.1:7861/"
    assert three["app.1"][1]["VITRINE_SYNC_URL"] == "/sink"  # work done once: replica 1 only
    assert not set(ONCE_ONLY) & set(three["app.2"][1]) and three["app.2"][1]["OTHER"] == "x"


# ------------------------------------------------------------------------------------------ scripts/replica.py
def _replica(tmp_path, cmd: str, *extra: str) -> tuple[subprocess.Popen, object]:
    log = open(tmp_path / "replica.log", "w")  # noqa: SIM115 - closed with the process
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPLICA), "--name", "app.9", "--url", f"http://127.0.0.1:{port}/",
                             "--cmd", cmd, *extra], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1",
                                 "GRADIO_SERVER_PORT": str(port)}, start_new_session=True)
    return proc, port


def _wait_for(path, pattern: str, count: int, proc: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, text := path.read_text())) < count:
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.3)
    return text


def test_a_crash_loop_ends_the_replica(tmp_path):
    proc, _ = _replica(tmp_path, f"{sys.executable} -c 'raise SystemExit(3)'", "--max-restarts", "2")
    assert proc.wait(timeout=60) == 1
    text = (tmp_path / "replica.log").read_text()
    assert text.count("app exited with status 3") == 3 and "a crash loop; giving up" in text


def test_a_stopped_queue_restarts_the_app_and_sigterm_stops_it(tmp_path):
    """The app's page still answers when its queue stopped: the health event fails, the app is killed and started
    again (the set goes on); SIGTERM then stops the app with the supervisor, leaving nothing behind."""
    import requests

    (tmp_path / "app.py").write_text(STOPPABLE_APP)
    proc, port = _replica(tmp_path, f"{sys.executable} {tmp_path / 'app.py'}", "--interval", "1", "--retries", "2")
    log = tmp_path / "replica.log"
    try:
        text = _wait_for(log, r"app answers its health event", 1, proc)
        first = int(re.search(r"app running as pid (\d+)", text).group(1))
        requests.post(f"http://127.0.0.1:{port}/gradio_api/call/stop_queue", json={"data": []}, timeout=30)
        text = _wait_for(log, r"app answers its health event", 2, proc)
        assert "unhealthy: killing the app" in text and "health check failed 2/2" in text
        second = int(re.findall(r"app running as pid (\d+)", text)[-1])
        assert second != first and not pid_alive(first) and pid_alive(second)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while pid_alive(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(second), "the app outlived its supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
