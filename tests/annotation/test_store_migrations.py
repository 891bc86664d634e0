"""Migrations: upgrade from empty, downgrade-upgrade round trip, models == migrations, the CLI, engine setup."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from annotation import db
from annotation.__main__ import default_url, main
from annotation.models import Base
from pg_databases import pg_database

TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database with nothing in it (not even the alembic_version table)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sub' / 'empty.db'}"  # the folder does not exist yet either
        return
    pg_url = request.getfixturevalue("pg_url")
    with pg_database(pg_url, "vitrine_migrations") as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_round_trip(empty_url):
    assert db.current_revision(empty_url) is None
    db.upgrade(empty_url)
    head = db.current_revision(empty_url)
    assert head is not None and _tables(empty_url) == TABLES
    db.upgrade(empty_url)  # running it again on every start is a no-op
    assert db.current_revision(empty_url) == head
    db.downgrade(empty_url, "base")
    assert db.current_revision(empty_url) is None and _tables(empty_url) == set()
    db.upgrade(empty_url)
    assert db.current_revision(empty_url) == head and _tables(empty_url) == TABLES


def test_migrations_match_the_models(empty_url):
    """A model change without a migration (or the reverse) fails here."""
    db.upgrade(empty_url)
    engine = db.make_engine(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_cli_upgrade_current_and_downgrade(empty_url, capsys):
    assert main(["--url", empty_url, "current"]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(["--url", empty_url, "upgrade"]) == 0
    head = db.current_revision(empty_url)
    assert f"upgraded to {head}" in capsys.readouterr().out
    assert main(["--url", empty_url, "downgrade", "base"]) == 0
    assert _tables(empty_url) == set()


def test_cli_default_url_follows_the_environment(tmp_path):
    assert default_url({"DATABASE_URL": "postgresql+psycopg://u@h/db"}) == "postgresql+psycopg://u@h/db"
    assert default_url({"VITRINE_DATA_DIR": str(tmp_path)}) == f"sqlite:///{tmp_path / 'vitrine.db'}"


def test_sqlite_engine_pragmas(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_make_engine_rejects_other_backends():
    with pytest.raises(ValueError, match="url must be a sqlite:// or postgresql\\+psycopg:// URL, got backend 'mysql'"):
        db.make_engine("mysql://u@h/db")
    with pytest.raises(ValueError, match="url must be a non-empty database URL string, got None"):
        db.make_engine(None)


def test_0002_backfills_denormalized_columns(empty_url):
    """Rows written under revision 0001 get their slate counts and credited models from the upgrade."""
    db.upgrade(empty_url, "0001")
    engine = db.make_engine(empty_url)
    t = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO users VALUES ('u', 'dataset', '{t}')"))
        conn.execute(text(f"INSERT INTO items VALUES ('1', 'a', NULL, '[]', '{t}'), ('2', 'b', NULL, '[]', '{t}')"))
        conn.execute(text("INSERT INTO impressions (id, event_id, user_id, model, model_b, created_at) VALUES "
                          f"(1, '{uuid.uuid4()}', 'u', 'ease', 'pop', '{t}')"))
        conn.execute(text("INSERT INTO impression_items VALUES (1, 0, '1', 'pop'), (1, 1, '2', 'ease')"))
        conn.execute(text("INSERT INTO feedback_events (id, event_id, user_id, item_id, impression_id, kind, created_at)"
                          f" VALUES (1, '{uuid.uuid4()}', 'u', '1', 1, 'click', '{t}'),"
                          f" (2, '{uuid.uuid4()}', 'u', '2', NULL, 'like', '{t}')"))
    engine.dispose()
    db.upgrade(empty_url)
    engine = db.make_engine(empty_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n_items, n_items_b FROM impressions")).one() == (2, 1)
        rows = conn.execute(text("SELECT id, model, position FROM feedback_events ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "pop", 0), (2, None, None)]
    db.downgrade(empty_url, "0001")
    assert db.current_revision(empty_url) == "0001"


def test_0005_lets_a_visitor_undo_and_downgrade_drops_the_undos(empty_url):
    """An undo is a feedback kind from revision 0005 on; other kinds are still refused; a downgrade deletes the undos
    (the old constraint cannot hold them) and keeps the rest."""
    from sqlalchemy.exc import IntegrityError

    db.upgrade(empty_url, "0004")
    engine = db.make_engine(empty_url)
    t = "2026-01-01 00:00:00"

    def add(conn, id_: int, kind: str) -> None:
        conn.execute(text("INSERT INTO feedback_events (id, event_id, user_id, item_id, kind, created_at) VALUES "
                          f"({id_}, '{uuid.uuid4()}', 'u', '1', '{kind}', '{t}')"))

    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO users VALUES ('u', 'dataset', '{t}')"))
        conn.execute(text(f"INSERT INTO items VALUES ('1', 'a', NULL, '[]', '{t}')"))
        add(conn, 1, "like")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        add(conn, 2, "undo")
    engine.dispose()
    db.upgrade(empty_url)
    engine = db.make_engine(empty_url)
    with engine.begin() as conn:
        add(conn, 2, "undo")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        add(conn, 3, "love")
    engine.dispose()
    db.downgrade(empty_url, "0004")
    engine = db.make_engine(empty_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, kind FROM feedback_events")).all() == [(1, "like")]
    engine.dispose()
