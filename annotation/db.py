"""Engines, sessions and migrations.

    engine = make_engine("sqlite:////data/vitrine.db")      # or "postgresql+psycopg://user@host/db"
    upgrade("sqlite:////data/vitrine.db")                    # Alembic, to head; the app runs it on start
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.record_feedback(s, ...)

SQLite gets WAL (readers never block the writer), foreign keys on, a 30 s busy timeout and `BEGIN IMMEDIATE`
for every transaction of a write session: the write lock is taken up front, so 8 concurrent writers queue on
the busy timeout instead of failing with "database is locked" when a reader upgrades to a writer. Within one
process, writers first queue on a lock of the engine (they sleep on it; only one of them at a time asks
SQLite), so threads of a server do not spin on SQLite's lock against each other; other processes still
meet on SQLite's lock. Read-only
session factories (`make_session_factory(engine, read_only=True)`, the dashboard's) use a plain deferred
`BEGIN` and never take the write lock. `synchronous=NORMAL` in WAL mode keeps every committed transaction
across a process crash (SIGKILL); only an OS crash or power cut can lose the last commits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_session_factory", "upgrade", "downgrade", "current_revision", "HEAD"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
SQLITE_CACHE_KIB = 65_536  # page cache per connection, an upper bound: pages are allocated as they are used
SQLITE_WAL_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL between checkpoints: a checkpoint fsyncs, a 1000-event batch dirties ~1000 pages
SQLITE_BUSY_TIMEOUT_MS = 30_000  # 8 writers x a few ms per transaction: waiting this long means something is stuck
_READ_ONLY = "vitrine_read_only"  # execution option marking a read-only session's connections
_HOLDS_WRITER = "vitrine_holds_writer"  # connection-record info key: this DBAPI connection holds the engine's writer lock


def make_engine(url: str, *, echo: bool = False, **kwargs) -> Engine:
    """An Engine for `url`, configured for this store.

    SQLite (file or `sqlite://` in memory): WAL, foreign keys, busy timeout, `BEGIN IMMEDIATE` for writes; the
    parent folder of a file DB is created. PostgreSQL (`postgresql+psycopg://...`): pooled connections, recycled after 30 min.
    Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty database URL string, got {url!r}")
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(url, echo=echo, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_recycle", 1800)  # no pre-ping round trip per checkout: one session per event
        return create_engine(url, echo=echo, **kwargs)
    raise ValueError(f"url must be a sqlite:// or postgresql+psycopg:// URL, got backend {backend!r} in {url!r}")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite would otherwise emit a deferred one).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # The default 2 MiB page cache thrashes once the random-UUID unique index outgrows it (~50k events)
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.close()

    # One writer per process at a time. A plain Lock (not an RLock) because it belongs to the DBAPI connection
    # that began the transaction, not to a thread: the pool may hand a connection back from another thread.
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        if not writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError(
                f"database is locked: another transaction of this process held the write lock for "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s"
            )
        try:
            _begin_immediate(connection.connection.driver_connection)
        except BaseException:
            writer.release()
            raise
        connection.info[_HOLDS_WRITER] = True

    def _release(info: dict) -> None:
        if info.pop(_HOLDS_WRITER, False):
            writer.release()

    @event.listens_for(engine, "commit")
    def _on_commit(connection) -> None:
        # The event comes before SQLAlchemy's own COMMIT: commit here, so that the next writer is let in only
        # once this transaction is durable (SQLAlchemy's COMMIT that follows finds no transaction: a no-op).
        # When COMMIT fails the lock stays held until the rollback that SQLAlchemy issues next.
        if connection.info.get(_HOLDS_WRITER):
            connection.connection.driver_connection.commit()
            _release(connection.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection) -> None:
        _release(connection.info)

    # Safety nets: a connection returned to the pool unfinished (a session garbage-collected, not closed), or
    # invalidated or closed after an error, gives the lock back too.
    @event.listens_for(engine, "reset")
    def _on_reset(_dbapi_connection, record, _state) -> None:
        _release(record.info)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_connection, record, _exc) -> None:
        _release(record.info)

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_connection, record) -> None:
        _release(record.info)


def _begin_immediate(dbapi_connection) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock with short polls.

    SQLite's own busy handler sleeps 1, 2, 5, ... up to 100 ms between tries, so with 8 writers most of the
    time goes to sleeping after the lock was already free. Here the connection has no busy timeout for this
    statement and polls every 0.2-2 ms instead, up to SQLITE_BUSY_TIMEOUT_MS, then raises "database is locked".
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0002
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """A `sessionmaker` bound to `engine`; frame each unit of work as `with Session() as s, s.begin(): ...`.

    `read_only=True` (dashboards, exports) never takes SQLite's write lock; on PostgreSQL it is the same factory.
    `expire_on_commit=False` so that rows returned by the store stay readable after the transaction commits.
    """
    bind = engine.execution_options(**{_READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def _alembic_config(url: str, connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = HEAD) -> None:
    """Migrate the database at `url` to `revision` (default: head). Safe to run on every start."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(url, connection), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" drops every table)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(_alembic_config(url, connection), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The Alembic revision the database at `url` is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
