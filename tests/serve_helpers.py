"""Serving helpers shared by the app, dashboard and deploy tests (a module of its own, in tests/, which is on
sys.path for every test folder: `conftest` names collide): free ports, plain HTTP GETs, waiting for a server,
nginx (or a skip), and `scripts/serve_all.py` (honcho running nginx, the app and the dashboard) started and stopped."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE_ALL = REPO_ROOT / "scripts" / "serve_all.py"
START_TIMEOUT_S = 180  # gradio and streamlit imports on a busy 2-core machine


def need_nginx() -> str:
    """Debian's nginx, or a skip (a failure in CI, where scripts/system_deps.sh installs it)."""
    import pytest

    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        message = "nginx not found: install Debian's nginx (scripts/system_deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_ok(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> str:
    """Poll `url` until it answers 200; fail early when `proc` dies."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve_all exited with {proc.returncode} before {url} answered")
        try:
            status, body = get(url, timeout=5)
            if status == 200:
                return body
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s (last: {last})")


def start_serve_all(port: int, log: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    """`scripts/serve_all.py` on 127.0.0.1:`port`, its output (honcho's, prefixed by process) to `log`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(SERVE_ALL), "--host", "127.0.0.1", "--port", str(port), *extra],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def child_pids(log: Path) -> dict[str, int]:
    """The pids honcho reported for its processes ("nginx started (pid=123)")."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"([\w.-]+) started \(pid=(\d+)\)", log.read_text())}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(proc: subprocess.Popen, log: Path | None = None) -> None:
    """SIGTERM serve_all (honcho stops its children); SIGKILL what is left after 30 s."""
    pids = child_pids(log) if log is not None and log.exists() else {}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in pids.values():  # honcho runs each child in a session of its own
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
