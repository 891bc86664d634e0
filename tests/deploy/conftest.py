"""Fixtures of the deploy tests: `front`, the one-port set of `scripts/serve_all.py` (nginx on a free port, the
stand-in Gradio app, the real dashboard on an empty migrated SQLite database behind a password), shared by the
tests of a module."""

from __future__ import annotations

import os

import pytest

from deploy_helpers import DASHBOARD_PASSWORD, STANDIN, free_port, need_nginx, start_serve_all, stop, wait_ok


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """Yields (base_url, port, process, log path)."""
    import sys

    from annotation.db import upgrade

    need_nginx()
    tmp = tmp_path_factory.mktemp("front")
    url = f"sqlite:///{tmp / 'vitrine.db'}"
    upgrade(url)
    env = {**os.environ, "DATABASE_URL": url, "VITRINE_DATA_DIR": str(tmp / "data"),
           "VITRINE_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD}
    port = free_port()
    log = tmp / "serve_all.log"
    proc = start_serve_all(port, log, env, "--app-cmd", f"{sys.executable} {STANDIN}")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(base + "/dashboard/_stcore/health", proc)
        wait_ok(base + "/", proc)
        yield base, port, proc, log
    finally:
        stop(proc, log)
