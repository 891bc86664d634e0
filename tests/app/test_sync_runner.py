"""app.serving.sync_runner: restore before serving, background syncs, a failing sink logged and retried (never raised)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from annotation import store
from annotation.db import make_engine, make_session_factory, upgrade
from app.serving.sync_runner import SyncRunner


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    import pandas as pd

    with Session() as s, s.begin():
        store.sync_items(s, pd.DataFrame({"item_id": ["1", "2", "3"], "title": ["A", "B", "C"]}))
        store.ensure_user(s, "7")
    yield Session, make_session_factory(engine, read_only=True)
    engine.dispose()


def _like(Session, item="1") -> str:
    event = str(uuid.uuid4())
    with Session() as s, s.begin():
        store.record_feedback(s, event, "7", item, "like")
    return event


def test_a_failing_sink_is_counted_and_retried_never_raised(sessions, tmp_path, caplog):
    Session, ReadSession = sessions
    blocker = tmp_path / "sink"
    blocker.write_text("a file where the sink's folder should be")
    now = [dt.datetime(2026, 11, 29, 12, 0, 0)]
    runner = SyncRunner(str(blocker), 10, Session, ReadSession, clock=lambda: now[0])
    _like(Session)
    assert runner.sync_now() is False and runner.sync_now() is False
    st = runner.status()
    assert st.failures == 2 and st.last_error and st.last_sync_at is None and st.lag_s is None
    assert "sync to" in caplog.text and "will retry" in caplog.text
    assert runner._delay() == 2.0  # backoff 1, 2, 4 ... s, at most every_s
    assert any(name == "sync error" for name, _, _ in runner.status_rows())
    blocker.unlink()  # the sink comes back: the next try ships everything, nothing was lost
    assert runner.sync_now() is True
    st = runner.status()
    assert st.failures == 0 and st.last_error is None and st.rows_shipped == 5  # 3 items, 1 user, 1 like
    now[0] = st.last_sync_at + dt.timedelta(seconds=42)
    assert runner.status().lag_s == pytest.approx(42)
    assert runner._delay() == 10


def test_background_thread_ships_and_stop_ships_the_rest(sessions, tmp_path):
    Session, ReadSession = sessions
    sink = str(tmp_path / "sink")
    runner = SyncRunner(sink, 0.1, Session, ReadSession).start()
    try:
        first = _like(Session)
        deadline = time.monotonic() + 20
        while runner.status().rows_shipped < 5 and time.monotonic() < deadline:  # 3 items, 1 user, 1 like
            time.sleep(0.05)
        assert runner.status().last_sync_at is not None
    finally:
        runner._stop.set()
    runner._thread.join(10)
    last = _like(Session, "2")  # arrives after the thread stopped: the final sync of stop() ships it
    runner.stop()
    from annotation import sync

    fs, root = sync.open_sink(sink)
    shipped = {r["event_id"] for r in sync._read_shards(fs, root, "feedback")}
    assert shipped == {first, last}


def test_restore_if_empty_rebuilds_then_leaves_a_full_store_alone(sessions, tmp_path):
    Session, ReadSession = sessions
    sink = str(tmp_path / "sink")
    event = _like(Session)
    assert SyncRunner(sink, 10, Session, ReadSession).sync_now()
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    Fresh = make_session_factory(engine)
    runner = SyncRunner(sink, 10, Fresh)
    result = runner.restore_if_empty()
    assert result.inserted["feedback"] == 1 and runner.status().restored_rows == sum(result.inserted.values())
    with Fresh() as s:
        assert store.feedback_frame(s)["event_id"].tolist() == [event]
    assert SyncRunner(sink, 10, Fresh).restore_if_empty() is None  # not empty any more
    engine.dispose()
    with pytest.raises(ValueError, match="every_s"):
        SyncRunner(sink, 0, Session)
    with pytest.raises(ValueError, match="sink_url"):
        SyncRunner("", 10, Session)


def test_syncs_can_run_in_a_child_process(sessions, tmp_path):
    """With the database URL, the shards are built in a child process (the app's GIL stays free); its state
    carries over between syncs, and a killed child is replaced by one that resumes from the sink."""
    import os
    import signal

    from annotation import sync

    Session, _ = sessions
    sink = str(tmp_path / "sink")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    runner = SyncRunner(sink, 10, Session, database_url=url)
    try:
        first = _like(Session)
        assert runner.sync_now(), runner.status().last_error
        assert runner.status().rows_shipped == 5
        assert runner.sync_now() and runner.status().rows_shipped == 5  # nothing new: the child kept its state
        [child] = list(runner._pool._processes)
        assert child != os.getpid()
        os.kill(child, signal.SIGKILL)
        second = _like(Session, "2")
        assert runner.sync_now() is False and "BrokenProcessPool" in runner.status().last_error
        assert runner.sync_now() is True  # a fresh child resumed from the sink: ships only the new like
        assert runner.status().rows_shipped == 6
    finally:
        runner.stop()
    fs, root = sync.open_sink(sink)
    assert sorted(r["event_id"] for r in sync._read_shards(fs, root, "feedback")) == sorted([first, second])
    assert runner._pool is None
