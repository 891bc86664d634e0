"""Constants and helpers shared by the dashboard tests (a module of its own: `conftest` names collide)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = str(REPO_ROOT / "app" / "dashboard.py")
STANDIN = str(REPO_ROOT / "tests" / "dashboard" / "standin_app.py")
# The simulation ends now: generated assets are stamped with the real time by the store, so a simulation in
# the past would leave them months away from the rest of the traffic.
SIM_NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
SIM_DAYS = 5
START_TIMEOUT_S = 120  # gradio and streamlit imports on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_ok(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> str:
    """Poll `url` until it answers 200; fail early when `proc` dies."""
    deadline = time.monotonic() + timeout
    last = None
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
