"""Reliability: 8 concurrent writers x 2,000 events with 10% retried writes end with exactly 16,000 rows and no
duplicates (threads on SQLite, processes on PostgreSQL), and a writer killed with SIGKILL mid-stream loses
nothing it had acknowledged and leaves the database readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text

from ann_writer import N_ITEMS, N_USERS, event_uuid, write_events
from annotation import store
from annotation.db import make_engine, make_session_factory
from annotation.models import FeedbackEvent

WRITERS, EVENTS, RETRY = 8, 2_000, 0.1
ROOT = Path(__file__).resolve().parents[2]
WRITER_SCRIPT = Path(__file__).with_name("ann_writer.py")


def _seed(Session) -> None:
    with Session() as s, s.begin():
        store.sync_items(s, pd.DataFrame({"item_id": [str(i) for i in range(1, N_ITEMS + 1)],
                                          "title": [f"Movie {i}" for i in range(1, N_ITEMS + 1)]}))
        for user in range(1, N_USERS + 1):
            store.ensure_user(s, str(user))


def _writer_process(url: str, writer: int, events: int, ack: bool, stderr) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, str(WRITER_SCRIPT), url, "--writer", str(writer), "--events", str(events),
            "--retry", str(RETRY)] + (["--ack"] if ack else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE if ack else subprocess.DEVNULL, stderr=stderr,
                            text=True, cwd=ROOT)


def _check_exact(Session) -> None:
    expected = {event_uuid(w, k) for w in range(WRITERS) for k in range(EVENTS)}
    with Session() as s:
        total = s.scalar(select(func.count()).select_from(FeedbackEvent))
        stored = set(s.scalars(select(FeedbackEvent.event_id)))
    assert total == WRITERS * EVENTS == len(expected)
    assert stored == expected  # every event once: nothing lost, nothing duplicated


def test_eight_threads_on_sqlite(tmp_path, sqlite_template):
    import shutil

    path = tmp_path / "threads.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    Session = make_session_factory(engine)
    _seed(Session)
    calls: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def work(writer: int) -> None:
        try:
            start.wait()
            calls.append(write_events(Session, writer, EVENTS, RETRY, seed=1))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors[:3]
    assert sum(calls) > WRITERS * EVENTS * 1.05  # the retries really happened (about 10%)
    _check_exact(Session)
    engine.dispose()


def test_eight_processes_on_postgresql(pg_store_url, tmp_path):
    engine = make_engine(pg_store_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE feedback_events, impression_items, impressions, users, items CASCADE"))
    Session = make_session_factory(engine)
    _seed(Session)
    logs = [(tmp_path / f"writer-{w}.log").open("w") for w in range(WRITERS)]
    procs = [_writer_process(pg_store_url, w, EVENTS, ack=False, stderr=log) for w, log in enumerate(logs)]
    for w, (proc, log) in enumerate(zip(procs, logs)):
        proc.wait(timeout=240)
        log.close()
        assert proc.returncode == 0, (tmp_path / f"writer-{w}.log").read_text()[-2000:]
    _check_exact(Session)
    engine.dispose()


def test_sigkill_loses_nothing_acknowledged(db_url, tmp_path):
    engine = make_engine(db_url)
    Session = make_session_factory(engine)
    _seed(Session)
    log = (tmp_path / "writer.log").open("w")
    proc = _writer_process(db_url, 0, 100_000, ack=True, stderr=log)
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it was writing as fast as it could
    proc.wait(timeout=30)
    acked.extend(line.strip() for line in proc.stdout.read().splitlines() if line.strip())
    proc.stdout.close()
    log.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300, (tmp_path / "writer.log").read_text()[-2000:]
    with Session() as s:
        stored = set(s.scalars(select(FeedbackEvent.event_id)))
        if engine.dialect.name == "sqlite":
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert set(acked) <= stored  # every acknowledged event survived
    assert len(stored) < 100_000  # it really was killed mid-stream
    with Session() as s, s.begin():  # and the database takes writes again
        store.record_feedback(s, event_uuid(99, 0), "1", "1", "click")
    engine.dispose()
