"""Constants and helpers shared by the dashboard tests (a module of its own: `conftest` names collide); the serving
helpers come from tests/serve_helpers.py."""

from __future__ import annotations

import datetime as dt

from serve_helpers import REPO_ROOT, free_port, get, start_serve_all, stop, wait_ok  # noqa: F401 - re-exported

DASHBOARD = str(REPO_ROOT / "app" / "dashboard" / "main.py")
STANDIN = str(REPO_ROOT / "tests" / "dashboard" / "standin_app.py")
# The simulation ends now: generated assets are stamped with the real time by the store, so a simulation in
# the past would leave them months away from the rest of the traffic.
SIM_NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
SIM_DAYS = 5
START_TIMEOUT_S = 120  # gradio and streamlit imports on a busy 2-core machine
