"""Fixtures for the store tests: every test that takes `db_url` runs once on SQLite and once on PostgreSQL.

- SQLite: a fresh file per test, copied from a template migrated once per session.
- PostgreSQL: a database of its own for this test session (created on the throwaway cluster that
  `scripts/with_postgres.sh` starts, dropped at the end), emptied with TRUNCATE before each test.
  Without `VITRINE_TEST_PG_URL` the PostgreSQL half skips with the reason (the `pg_url` fixture).
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import text

from annotation import store
from annotation.db import make_engine, make_session_factory, upgrade
from annotation.models import Base
from ann_helpers import ITEMS
from pg_databases import pg_database

TABLES = ", ".join(table.name for table in Base.metadata.sorted_tables)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def pg_store_url(pg_url: str):
    with pg_database(pg_url, "vitrine_annotation", migrate=True) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        path = tmp_path / "vitrine.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_store_url")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):
    return make_session_factory(engine)


@pytest.fixture
def catalog(Session):
    """20 items "1".."20" and two dataset users "196", "186"."""
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
        store.ensure_user(s, "186")
    return Session
