"""Fixtures of the dashboard tests: one database seeded by the simulator (known truth), one empty database.

The simulated database is built once per session (about 15 s on a shared 2-core machine): 30 ml-100k
visitors over 5 days, EASE against popularity (EASE predicts the held-out ratings better, so it must win),
20 items with captions from three generators of known quality, and three annotators of accuracy 0.95, 0.8
and 0.6 (the last one answering "A" 40% of the time whatever it sees).
"""

from __future__ import annotations

import pytest

from dash_helpers import SIM_DAYS, SIM_NOW


@pytest.fixture(scope="session")
def ml100k(tmp_path_factory):
    from recommenders.data import load_dataset

    return load_dataset("ml-100k", tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def sim_db(tmp_path_factory, ml100k):
    """(url, report) of a migrated SQLite database filled by `app.simulate.traffic.simulate`."""
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.simulate.traffic import SimConfig, simulate

    url = f"sqlite:///{tmp_path_factory.mktemp('sim') / 'vitrine.db'}"
    upgrade(url)
    config = SimConfig(users=30, days=SIM_DAYS, asset_items=20, seed=0, now=SIM_NOW)
    report = simulate(make_session_factory(make_engine(url)), ml100k, config, log=lambda m: None)
    return url, report


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory) -> str:
    from annotation.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'vitrine.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sim_frames(sim_db):
    from annotation.db import make_engine
    from app.dashboard.data import load_frames

    return load_frames(make_engine(sim_db[0]))


@pytest.fixture(scope="session")
def empty_frames(empty_db):
    from annotation.db import make_engine
    from app.dashboard.data import load_frames

    return load_frames(make_engine(empty_db))


@pytest.fixture(scope="session")
def served(sim_db, tmp_path_factory):
    """`scripts/serve_all.py` on a free public port: the stand-in app at /, the real dashboard (simulated DB)
    at /dashboard/. Yields (base_url, process); stopped with SIGTERM (which stops its children) at the end."""
    import os
    import sys

    from dash_helpers import START_TIMEOUT_S, STANDIN, free_port, start_serve_all, stop, wait_ok

    port = free_port()
    env = {**os.environ, "DATABASE_URL": sim_db[0], "PYTHONUNBUFFERED": "1"}
    env.pop("VITRINE_DASHBOARD_PASSWORD", None)
    env["VITRINE_DASHBOARD_OPEN"] = "1"
    log = tmp_path_factory.mktemp("served") / "serve_all.log"
    proc = start_serve_all(port, log, env, "--app-cmd", f"{sys.executable} {STANDIN}")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(base + "/dashboard/_stcore/health", proc, timeout=START_TIMEOUT_S)
        wait_ok(base + "/", proc, timeout=START_TIMEOUT_S)
        yield base, proc
    finally:
        stop(proc, log)
