"""Constants and helpers shared by the dashboard tests (a module of its own: `conftest` names collide)."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = str(REPO_ROOT / "app" / "dashboard.py")
SIM_NOW = dt.datetime(2026, 3, 10, 18, 0)  # a fixed "today" so dates in assertions do not drift
SIM_DAYS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
