"""SQLite writers of one process queue on the engine's lock: they never spin on SQLite's, they always get it
back (commit, rollback, error, an abandoned session), and readers never wait for it."""

from __future__ import annotations

import gc
import shutil
import threading
import time
import types

import pytest
from sqlalchemy import func, select, text

import annotation.db as db
from annotation import store
from annotation.db import make_engine, make_session_factory
from annotation.models import FeedbackEvent, User
from ann_helpers import ITEMS, new_id


@pytest.fixture
def sqlite(tmp_path, sqlite_template, monkeypatch):
    """(engine, Session, ReadSession) on a fresh migrated file with the catalog and 4 users; a leaked writer
    lock shows as a 2 s timeout here instead of the production 30 s."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 2_000)
    path = tmp_path / "w.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        for u in range(1, 5):
            store.ensure_user(s, str(u))
    yield engine, Session, make_session_factory(engine, read_only=True)
    engine.dispose()


def _like(Session, user="1", item="1") -> None:
    with Session() as s, s.begin():
        store.record_feedback(s, new_id(), user, item, "like")


def _n_events(ReadSession) -> int:
    with ReadSession() as s:
        return s.scalar(select(func.count()).select_from(FeedbackEvent))


def test_threads_queue_on_the_process_lock_not_on_sqlite(sqlite, monkeypatch):
    _, Session, ReadSession = sqlite
    polls = []
    monkeypatch.setattr(db, "time", types.SimpleNamespace(monotonic=time.monotonic,
                                                           sleep=lambda s: polls.append(s) or time.sleep(s)))
    def writer(k: int) -> None:
        for n in range(40):
            _like(Session, user=str(1 + k % 4), item=str(1 + n % 20))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _n_events(ReadSession) == 8 * 40
    assert polls == []  # no thread ever found SQLite's write lock taken


def test_a_failed_transaction_gives_the_lock_back(sqlite):
    _, Session, ReadSession = sqlite
    with pytest.raises(Exception, match="unknown|not a known"):
        with Session() as s, s.begin():
            store.record_feedback(s, new_id(), "1", "1", "like")
            store.record_feedback(s, new_id(), "nobody", "1", "like")  # raises inside the transaction
    start = time.perf_counter()
    _like(Session)
    assert time.perf_counter() - start < 1.0
    assert _n_events(ReadSession) == 1  # the failed transaction left nothing behind


def test_an_abandoned_session_gives_the_lock_back(sqlite):
    _, Session, ReadSession = sqlite
    s = Session()
    s.begin()
    store.record_feedback(s, new_id(), "1", "1", "like")  # holds the write lock, never committed or closed
    del s
    gc.collect()
    start = time.perf_counter()
    _like(Session, user="2")
    assert time.perf_counter() - start < 1.0
    with ReadSession() as r:
        assert r.scalars(select(FeedbackEvent.user_id)).all() == ["2"]


def test_readers_do_not_wait_for_a_writer(sqlite):
    _, Session, ReadSession = sqlite
    with Session() as s, s.begin():
        store.record_feedback(s, new_id(), "1", "1", "like")
        seen = []
        reader = threading.Thread(target=lambda: seen.append(_n_events(ReadSession)))
        start = time.perf_counter()
        reader.start()
        reader.join(timeout=5)
        assert seen == [0] and time.perf_counter() - start < 1.0  # the last committed state, at once
    assert _n_events(ReadSession) == 1


def test_a_second_writer_waits_then_proceeds(sqlite):
    _, Session, ReadSession = sqlite
    order = []
    with Session() as s, s.begin():
        store.record_feedback(s, new_id(), "1", "1", "like")
        other = threading.Thread(target=lambda: (_like(Session, user="2"), order.append("second")))
        other.start()
        time.sleep(0.2)
        assert order == []  # still waiting for the lock
        order.append("first")
    other.join(timeout=5)
    assert order == ["first", "second"] and _n_events(ReadSession) == 2


def test_a_writer_held_too_long_is_a_clear_error(sqlite):
    _, Session, _ = sqlite
    with Session() as s, s.begin():
        store.ensure_user(s, "9")
        errors = []

        def late() -> None:
            try:
                _like(Session)
            except Exception as exc:  # noqa: BLE001 - the message is the assertion
                errors.append(str(exc))

        t = threading.Thread(target=late)
        t.start()
        t.join(timeout=10)
    assert errors and "database is locked" in errors[0] and "2 s" in errors[0]
    with Session() as s:
        assert s.get(User, "9") is not None
    _like(Session)  # and the lock works again


def test_a_core_connection_gives_the_lock_back(sqlite):
    engine, Session, _ = sqlite
    with engine.connect() as conn:  # a Core connection of the write engine is a writer too
        conn.execute(text("SELECT 1"))
        conn.commit()
    _like(Session)
