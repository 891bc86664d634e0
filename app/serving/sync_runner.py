"""The durable event sink, run for the app: restore an empty store before serving, then sync in the background.

    runner = SyncRunner(settings.sync_url, settings.sync_every, Session, ReadSession)
    runner.restore_if_empty()     # at start, before the app serves (rebuilds the store from the sink)
    runner.start()                # a daemon thread: annotation.sync.sync_once every `every_s` seconds
    runner.status()               # last sync time, lag, errors: the Status tab's rows (`status_rows()`)
    runner.stop()                 # at shutdown: one last sync, then the thread ends

The syncs only read (a read-only session factory: on SQLite they never take the write lock), so requests are
never blocked by them; given the `database_url`, they run in a child process of their own (`start_sync` does
that), so that building the shards never holds the app's GIL while requests are answered. A failing sink (network, permissions, a full disk) is logged and retried after 1, 2, 4 ...
seconds, at most `every_s`; nothing is lost meanwhile, the next successful sync ships everything since the last
one. `lag_s` is the age of the oldest commit that may not be in the sink yet: the time since the start of the
last successful sync.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from annotation import restore, sync

__all__ = ["SyncRunner", "SyncStatus", "start_sync"]

log = logging.getLogger("vitrine.sync")


@dataclass(frozen=True)
class SyncStatus:
    sink: str
    every_s: int
    last_sync_at: dt.datetime | None  # naive UTC start of the last successful sync (all before it is shipped)
    lag_s: float | None  # seconds since then; None before the first successful sync
    last_error: str | None  # the last failure's message, cleared by a success
    failures: int  # failures in a row
    rows_shipped: int  # rows shipped by this process
    restored_rows: int | None  # rows the start-up restore added (None: no restore ran)


class SyncRunner:
    """Sync the store to `sink_url` every `every_s` seconds on a background thread (see the module docstring).

    sessions: a writing session factory (the restore needs it); read_sessions: a read-only one for the syncs
    (defaults to `sessions`).
    """

    def __init__(self, sink_url: str, every_s: float, sessions, read_sessions=None, *, database_url: str | None = None,
                 clock: Callable[[], dt.datetime] = sync.utcnow) -> None:
        if not isinstance(sink_url, str) or not sink_url.strip():
            raise ValueError(f"sink_url must be a path or fsspec URL, got {sink_url!r}")
        if isinstance(every_s, bool) or not isinstance(every_s, (int, float)) or every_s <= 0:
            raise ValueError(f"every_s must be a positive number of seconds, got {every_s!r}")
        self.sink_url = sink_url.strip()
        self.every_s = every_s
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.state = sync.SyncState()
        self.database_url = database_url  # set: syncs run in a child process (see the module docstring)
        self._pool = None
        self._clock = clock
        self._lock = threading.Lock()  # one sync at a time (the thread, `sync_now`, `stop`)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ok: dt.datetime | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._shipped = 0
        self._restored: int | None = None

    # -- start-up ---------------------------------------------------------------------------------------
    def restore_if_empty(self) -> restore.RestoreResult | None:
        """Rebuild the store from the sink when it holds no people and no events; returns what was added, or
        None when the store was not empty. Raises when the sink cannot be read: serving an empty store over a
        sink that holds labels would look like data loss."""
        with self.sessions() as s:
            empty = restore.store_is_empty(s)
        if not empty:
            log.info("sync: the store is not empty; no restore from %s", self.sink_url)
            return None
        result = restore.restore(self.sessions, self.sink_url)
        self._restored = sum(result.inserted.values())
        log.info("sync: restored %d rows from %s in %.1f s (%s)", self._restored, self.sink_url, result.seconds,
                 ", ".join(f"{t} {n}" for t, n in result.inserted.items() if n) or "the sink is empty")
        return result

    # -- syncing ----------------------------------------------------------------------------------------
    def sync_now(self) -> bool:
        """One sync; True when it succeeded. Never raises: a failure is logged and counted."""
        with self._lock:
            try:
                result = self._sync()
            except Exception as exc:  # noqa: BLE001 - the sink may fail in any way; the app must go on
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("sync to %s failed (%d in a row), will retry: %s", self.sink_url, self._failures,
                            self._last_error)
                return False
            self._last_ok, self._last_error, self._failures = result.started_at, None, 0
            n = sum(result.shipped.values())
            self._shipped += n
            if n:
                log.info("sync: %d rows to %s in %.2f s", n, self.sink_url, result.seconds)
            return True

    def _sync(self) -> sync.SyncResult:
        if self.database_url is None:
            return sync.sync_once(self.read_sessions, self.sink_url, self.state)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return self._pool.submit(_sync_in_child, self.database_url, self.sink_url).result()
        except BrokenProcessPool:  # the child died (killed, out of memory): a fresh one resumes from the sink
            self._pool = None
            raise

    def _delay(self) -> float:
        return self.every_s if not self._failures else min(self.every_s, 2.0 ** (self._failures - 1))

    def _run(self) -> None:
        while not self._stop.wait(self._delay()):
            self.sync_now()

    def start(self) -> "SyncRunner":
        """Start the background thread (idempotent); returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vitrine-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self, final_sync: bool = True, timeout: float = 30.0) -> None:
        """Stop the thread; with `final_sync`, ship what arrived since the last sync first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if final_sync:
            self.sync_now()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- status -----------------------------------------------------------------------------------------
    def status(self) -> SyncStatus:
        lag = None if self._last_ok is None else max(0.0, (self._clock() - self._last_ok).total_seconds())
        return SyncStatus(sink=self.sink_url, every_s=int(self.every_s), last_sync_at=self._last_ok, lag_s=lag,
                          last_error=self._last_error, failures=self._failures, rows_shipped=self._shipped,
                          restored_rows=self._restored)

    def status_rows(self) -> list[tuple[str, str, str]]:
        """(name, value, note) rows for the Status tab's "Durability" section."""
        st = self.status()
        last = "never" if st.last_sync_at is None else f"{st.last_sync_at:%Y-%m-%d %H:%M:%S} UTC"
        lag = "-" if st.lag_s is None else f"{st.lag_s:.0f} s"
        rows = [("event sink", st.sink, f"synced every {st.every_s} s"),
                ("last sync", last, f"{st.rows_shipped} rows shipped since start"),
                ("lag", lag, "a crash now would lose at most what arrived in this time")]
        if st.last_error:
            rows.append(("sync error", st.last_error, f"{st.failures} failures in a row; retrying"))
        if st.restored_rows is not None:
            rows.append(("restored at start", str(st.restored_rows), "rows rebuilt from the sink"))
        return rows


_CHILD: dict[tuple[str, str], tuple] = {}  # in the sync child process: (session factory, state) per (db, sink)


def _sync_in_child(database_url: str, sink_url: str) -> sync.SyncResult:
    """One sync, in the child process; its engine and SyncState live there between calls."""
    if (database_url, sink_url) not in _CHILD:
        from annotation.db import make_engine, make_session_factory

        engine = make_engine(database_url, pool_size=1) if not database_url.startswith("sqlite") \
            else make_engine(database_url)
        _CHILD[(database_url, sink_url)] = (make_session_factory(engine, read_only=True), sync.SyncState())
    sessions, state = _CHILD[(database_url, sink_url)]
    return sync.sync_once(sessions, sink_url, state)


def start_sync(settings, say: Callable[[str], None] = log.info) -> SyncRunner | None:
    """For `python -m app`: when `settings.sync_url` is set, migrate the database, restore it from the sink if it
    is empty, and start syncing; returns the running SyncRunner (None without a sink URL). Call before the app
    builds its services, so that it serves the restored store."""
    if not settings.sync_url:
        return None
    from annotation.db import make_engine, make_session_factory, upgrade

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    runner = SyncRunner(settings.sync_url, settings.sync_every, make_session_factory(engine),
                        make_session_factory(engine, read_only=True), database_url=settings.database_url)
    started = time.perf_counter()
    result = runner.restore_if_empty()
    if result is not None:
        say(f"sync: restored {sum(result.inserted.values())} rows from {settings.sync_url} "
            f"in {time.perf_counter() - started:.1f} s")
    runner.start()
    say(f"sync: shipping committed records to {settings.sync_url} every {settings.sync_every} s")
    return runner
