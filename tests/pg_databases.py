"""Throwaway PostgreSQL databases on the test cluster (`VITRINE_TEST_PG_URL`), shared by every test folder
(imported as `pg_databases`): a fresh database per test or module, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy.engine import make_url


def pg_admin_url(url: str) -> str:
    """The psycopg (libpq) URL of the cluster's `postgres` maintenance database."""
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


def create_pg_database(url: str, name: str) -> str:
    """Create database `name` on the cluster of `url` (dropped first if it exists); its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(pg_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(pg_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def pg_database(url: str, prefix: str, *, migrate: bool = False) -> Iterator[str]:
    """A fresh database `<prefix>_<random>` on the cluster of `url` for the block (migrated to the newest schema
    when `migrate`): its SQLAlchemy URL. Dropped afterwards, also when the block fails."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    db_url = create_pg_database(url, name)
    try:
        if migrate:
            from annotation.db import upgrade

            upgrade(db_url)
        yield db_url
    finally:
        drop_pg_database(url, name)
