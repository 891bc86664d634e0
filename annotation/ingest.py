"""The write path of `store.record_feedback_batch`: many validated feedback rows stored exactly once.

The caller (the store) has validated every row and checked that its users, items and impressions exist; here the
rows are written with `INSERT ... ON CONFLICT (event_id) DO NOTHING`, so a retried batch, or two writers sending
the same events at once, store each event once. An event whose UUID is stored with another payload raises
`EventConflictError` and leaves nothing of the batch written.

SQLite: one lookup of the batch's UUIDs (the unique index, always), then the DB-API's own executemany (a C loop)
of one upsert; its rowcount sums the rows actually inserted.

PostgreSQL: one statement inserts the whole batch from nine array parameters,

    INSERT INTO feedback_events (...) SELECT * FROM unnest($1::text[], ..., $9::int4[])
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id

and only the events it did not insert (replays, normally none) are looked up and compared; on a conflict the rows
this call inserted are deleted again (they were never visible to anyone else) before the error is raised. With
the users-and-items look-up (`missing_references`, one statement) a batch costs four round trips: BEGIN, look-up,
insert, COMMIT. Why not "look up the UUIDs, then insert" as on SQLite (bench/profile_ingest.py, BENCHMARKS.md):
`WHERE event_id IN (500 values)` is planned as a sequential scan of the whole table while the table is small or
has no statistics yet (autovacuum had not analyzed it after 200k rows of batched ingest), so every batch read
every stored row and ingest slowed as the table grew; `ON CONFLICT` finds conflicts through the unique index by
construction, whatever the statistics. And SQLAlchemy's executemany of a 9-column INSERT with RETURNING spent most
of its time in the client (building and binding 9,000 parameters per 1,000 rows), where nine arrays cost psycopg
one parameter each.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from annotation.errors import EventConflictError

__all__ = ["FEEDBACK_COLUMNS", "REPLAY_KEYS", "check_replay", "insert_feedback", "missing_references"]

# The columns of a feedback row written here, and the ones a replay must match to be the same event.
FEEDBACK_COLUMNS = ("event_id", "user_id", "item_id", "impression_id", "kind", "value", "created_at", "model",
                    "position")
REPLAY_KEYS = ("user_id", "item_id", "kind", "value")
_PG_TYPES = ("text", "text", "text", "int8", "text", "float8", "timestamp", "text", "int4")
_COLUMN_LIST = ", ".join(FEEDBACK_COLUMNS)
_SQLITE_INSERT = (f"INSERT INTO feedback_events ({_COLUMN_LIST}) VALUES ({', '.join('?' for _ in FEEDBACK_COLUMNS)}) "
                  f"ON CONFLICT (event_id) DO NOTHING")
# ORDER BY event_id: two writers of overlapping batches take the unique index's row locks in the same order, so
# they queue on each other instead of deadlocking.
_PG_INSERT = (f"INSERT INTO feedback_events ({_COLUMN_LIST}) SELECT * FROM unnest("
              + ", ".join(f"%({c})s::{t}[]" for c, t in zip(FEEDBACK_COLUMNS, _PG_TYPES))
              + f") AS batch ({_COLUMN_LIST}) ORDER BY event_id ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
_PG_STORED = f"SELECT event_id, {', '.join(REPLAY_KEYS)} FROM feedback_events WHERE event_id = ANY(%(ids)s::text[])"
_PG_UNDO = "DELETE FROM feedback_events WHERE event_id = ANY(%(ids)s::text[])"
_PG_MISSING = ("SELECT (SELECT array_agg(u) FROM unnest(%(users)s::text[]) AS u "
               "        WHERE NOT EXISTS (SELECT 1 FROM users WHERE users.user_id = u)), "
               "       (SELECT array_agg(i) FROM unnest(%(items)s::text[]) AS i "
               "        WHERE NOT EXISTS (SELECT 1 FROM items WHERE items.item_id = i))")
_SQLITE_LOOKUP_CHUNK = 500  # ids per IN (...): well under SQLite's bound-parameter limit


def check_replay(kind: str, event_id: str, stored: Mapping[str, Any], sent: Mapping[str, Any]) -> None:
    """Raise `EventConflictError` when an event stored under `event_id` differs from the one sent again."""
    diff = {k: (stored[k], sent[k]) for k in sent if stored[k] != sent[k]}
    if diff:
        shown = ", ".join(f"{k}: stored {a!r}, sent {b!r}" for k, (a, b) in diff.items())
        raise EventConflictError(f"event_id {event_id} is already stored as a different {kind} ({shown})")


def insert_feedback(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store `rows` (dicts with every key of FEEDBACK_COLUMNS, distinct event ids, created_at set) in the
    connection's transaction; returns how many were new. Raises `EventConflictError` (writing nothing) when an
    event id is stored with another payload."""
    if not rows:
        return 0
    if connection.dialect.name == "postgresql":
        return _insert_postgresql(connection, rows)
    return _insert_sqlite(connection, rows)


def _compare_stored(stored: Mapping[str, tuple], rows: Sequence[Mapping[str, Any]]) -> None:
    for row in rows:
        found = stored.get(row["event_id"])
        if found is not None:
            check_replay("feedback event", row["event_id"], dict(zip(REPLAY_KEYS, found)),
                         {k: row[k] for k in REPLAY_KEYS})


def _insert_sqlite(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    from annotation.models import FeedbackEvent

    # SQLite always answers `event_id IN (...)` from the unique index: look up first, insert only the new rows.
    ids = [row["event_id"] for row in rows]
    stored: dict[str, tuple] = {}
    for start in range(0, len(ids), _SQLITE_LOOKUP_CHUNK):
        chunk = ids[start : start + _SQLITE_LOOKUP_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for found in connection.exec_driver_sql(
            f"SELECT event_id, {', '.join(REPLAY_KEYS)} FROM feedback_events WHERE event_id IN ({marks})", tuple(chunk)
        ):
            stored[found[0]] = tuple(found[1:])
    _compare_stored(stored, rows)
    new_rows = [row for row in rows if row["event_id"] not in stored]
    if not new_rows:
        return 0
    # The DB-API's own executemany (a C loop) of one upsert; its rowcount sums the rows actually inserted (a
    # concurrent writer may have stored some events meanwhile). Datetimes go through the column type's own bind
    # processor, so rows are stored exactly as the ORM stores them.
    column_type = FeedbackEvent.__table__.c.created_at.type
    to_db = column_type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    params = [tuple(to_db(row[c]) if c == "created_at" else row[c] for c in FEEDBACK_COLUMNS) for row in new_rows]
    return connection.exec_driver_sql(_SQLITE_INSERT, params).rowcount


def _insert_postgresql(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    columns = {c: [row[c] for row in rows] for c in FEEDBACK_COLUMNS}
    inserted = list(connection.exec_driver_sql(_PG_INSERT, columns).scalars())
    if len(inserted) < len(rows):  # some events were stored already (a retry): each must be the same event
        mine = set(inserted)
        replays = [row for row in rows if row["event_id"] not in mine]
        stored = {found[0]: tuple(found[1:]) for found in connection.exec_driver_sql(
            _PG_STORED, {"ids": [row["event_id"] for row in replays]})}
        try:
            _compare_stored(stored, replays)
        except EventConflictError:
            if inserted:  # nothing of a refused batch stays written, even if the caller goes on and commits
                connection.exec_driver_sql(_PG_UNDO, {"ids": inserted})
            raise
    return len(inserted)


def missing_references(connection: Connection, user_ids: Collection[str], item_ids: Collection[str]
                       ) -> tuple[set[str], set[str]]:
    """The ones of `user_ids` that are not stored users and of `item_ids` that are not catalogue items."""
    user_ids, item_ids = list(dict.fromkeys(user_ids)), list(dict.fromkeys(item_ids))
    if connection.dialect.name == "postgresql":  # one statement, one array parameter each, probes of the keys
        users, items = connection.exec_driver_sql(_PG_MISSING, {"users": user_ids, "items": item_ids}).one()
        return set(users or ()), set(items or ())
    found = {}
    for name, table, values in (("user_id", "users", user_ids), ("item_id", "items", item_ids)):
        stored: set[str] = set()
        for start in range(0, len(values), _SQLITE_LOOKUP_CHUNK):
            chunk = values[start : start + _SQLITE_LOOKUP_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            stored.update(connection.exec_driver_sql(f"SELECT {name} FROM {table} WHERE {name} IN ({marks})",
                                                     tuple(chunk)).scalars())
        found[table] = set(values) - stored
    return found["users"], found["items"]
