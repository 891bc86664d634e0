"""Reliability: 8 concurrent writers x 2,000 events with 10% retried writes end with exactly 16,000 rows and no
duplicates (threads on SQLite, processes on PostgreSQL), and a writer killed with SIGKILL mid-stream loses
nothing it had acknowledged and leaves the database readable. Batches (`record_feedback_batch`): a writer killed
inside a batch's transaction leaves none of that batch and all of the batches before it, and the client's retry of
every batch ends with each event once; 8 processes sending the same batches at once (half of them in reverse
order) store each event once, and two overlapping batches take their row locks in one order (no deadlock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text

from ann_writer import N_ITEMS, N_USERS, batch_events, event_uuid, write_batches, write_events
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


def _writer_process(url: str, writer: int, events: int, ack: bool, stderr, extra: tuple[str, ...] = ()
                    ) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, str(WRITER_SCRIPT), url, "--writer", str(writer), "--events", str(events),
            "--retry", str(RETRY)] + (["--ack"] if ack else []) + list(extra)
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


def test_batch_killed_mid_transaction_then_retried(db_url, tmp_path):
    """SIGKILL inside batch 4's transaction (its rows written, not committed), then the client sends every batch
    again: batches 0-3 were stored and acknowledged, batch 4 was not stored, and after the retry every event is
    stored once."""
    engine = make_engine(db_url)
    Session = make_session_factory(engine)
    _seed(Session)
    batches = batch_events(0, 2_000, 250, seed=0)
    log = (tmp_path / "writer.log").open("w")
    proc = _writer_process(db_url, 0, 2_000, ack=True, stderr=log, extra=("--batch", "250", "--hang-in-batch", "4"))
    acked: list[str] = []
    for line in proc.stdout:
        if line.strip() == "IN-BATCH":
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "writer.log").read_text()[-2000:]
    expected = [event["event_id"] for events in batches for event in events]
    assert acked == expected[:1_000]
    with Session() as s:
        assert set(s.scalars(select(FeedbackEvent.event_id))) == set(acked)  # all of 0-3, nothing of batch 4
    assert write_batches(Session, batches) == 1_000  # the retry of all 8 batches adds exactly the missing half
    assert write_batches(Session, batches) == 0  # and a second retry adds nothing
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 2_000
        assert set(s.scalars(select(FeedbackEvent.event_id))) == set(expected)
    engine.dispose()


def test_same_batches_from_eight_processes_on_postgresql(pg_store_url, tmp_path):
    """Two processes per writer send the same 8 batches of 250 at the same time, one of them each batch reversed:
    every event is stored once and no writer fails (a deadlock would fail one)."""
    engine = make_engine(pg_store_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE feedback_events, impression_items, impressions, users, items CASCADE"))
    Session = make_session_factory(engine)
    _seed(Session)
    writers = WRITERS // 2
    logs = [(tmp_path / f"writer-{p}.log").open("w") for p in range(WRITERS)]
    start_at = str(time.time() + 8)  # every process imported and connected: the pairs really race
    procs = [_writer_process(pg_store_url, p // 2, EVENTS, ack=False, stderr=log,
                             extra=("--batch", "250", "--start-at", start_at) + (("--reverse",) if p % 2 else ()))
             for p, log in enumerate(logs)]
    for p, (proc, log) in enumerate(zip(procs, logs)):
        proc.wait(timeout=240)
        log.close()
        assert proc.returncode == 0, (tmp_path / f"writer-{p}.log").read_text()[-2000:]
    expected = {event_uuid(w, k) for w in range(writers) for k in range(EVENTS)}
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == len(expected)
        assert set(s.scalars(select(FeedbackEvent.event_id))) == expected
    engine.dispose()


def test_overlapping_batches_take_row_locks_in_one_order_on_postgresql(pg_store_url):
    """A batch that lists its new events first, then events another open transaction has just written, waits for
    that transaction before writing anything: it inserts in event_id order, so the first writer can go on and
    write one of the second batch's new events without a deadlock."""
    engine = make_engine(pg_store_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE feedback_events, impression_items, impressions, users, items CASCADE"))
    Session = make_session_factory(engine)
    _seed(Session)
    low = [str(uuid.UUID(int=1 + i)) for i in range(50)]  # 00000000-...: sorts before every `high` id
    high = [str(uuid.UUID(int=2**128 - 1 - i)) for i in range(50)]

    def events(ids: list[str]) -> list[dict]:
        return [{"event_id": e, "user_id": "1", "item_id": "1", "kind": "click"} for e in ids]

    first = Session()
    first.begin()
    assert store.record_feedback_batch(first, events(low)) == 50
    outcome: dict = {}

    def second() -> None:
        try:
            with Session() as s, s.begin():
                outcome["new"] = store.record_feedback_batch(s, events(high + low))
        except Exception as exc:  # asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    with engine.connect() as watch:  # until the second writer waits on the first one's rows
        deadline = time.monotonic() + 30
        while not watch.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database()")).scalar():
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.01)
    try:
        assert store.record_feedback_batch(first, events(high[:1])) == 1
        first.commit()
    finally:
        first.close()
    thread.join(timeout=30)
    assert outcome == {"new": 49}
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 100
    engine.dispose()
