"""The store: idempotent writes of people, events, assets and evaluation runs, and (re-exported from
`annotation.frames`) the reads. Pairs, the labeling queue and preference labels are `annotation.pairs`.

Every function takes `session` first and never commits: the caller frames the transaction, one per user
event, so that either everything a call writes is stored or nothing is:

    Session = make_session_factory(make_engine(url))
    with Session() as s, s.begin():
        store.ensure_user(s, "196")
        store.record_feedback(s, uuid.uuid4(), "196", "242", "like", impression_id=imp.id)

Idempotency: each event carries a client-generated UUID (`event_id`). Sending the same event again (a retry
after a timeout, a double click) stores nothing and returns the row already stored; the same UUID with a
different payload raises `EventConflictError`. Rows are inserted with `INSERT ... ON CONFLICT DO NOTHING`, so
two concurrent retries of one event also end with one row, on SQLite and PostgreSQL alike.

Validation: a call checks every argument (types, ranges, lengths, that users, items, assets, impressions and
pairs exist) before its first write, and raises `InvalidInputError` / `Unknown*Error` naming the argument,
what was expected and what was received. A batch is validated whole before any row of it is written.
`insert_user` and `insert_impression` are the writes of `ensure_user` and `record_impression` without the
checks, for a caller that made them already (the app checks each id once, where a request comes in, and takes
items from its catalog): they write the same rows, idempotently, and the database's keys are their only guard.
"""

from __future__ import annotations

import dataclasses
import functools
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session, selectinload

from annotation import _validate as v
from annotation.errors import (
    InvalidInputError,
    UnknownAnnotatorError,
    UnknownImpressionError,
    UnknownItemError,
    UnknownUserError,
)
from annotation.ingest import FEEDBACK_COLUMNS as _FEEDBACK_COLUMNS
from annotation.ingest import check_replay as _check_replay
from annotation.ingest import insert_feedback, missing_references
from annotation.frames import (
    feedback_counts,
    model_feedback_rates,
    annotators_frame,
    assets_frame,
    eval_runs_frame,
    feedback_frame,
    impressions_frame,
    interactions_frame,
    preferences_frame,
    DEFAULT_WEIGHTS,
)
from annotation.models import (
    ASSET_KINDS,
    FEEDBACK_KINDS,
    HASH_LEN,
    ID_LEN,
    MODEL_LEN,
    NAME_LEN,
    PATH_LEN,
    QUERY_LEN,
    ROLES,
    TITLE_LEN,
    USER_KINDS,
    Annotator,
    AppSession,
    EvalRun,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    ImpressionItem,
    Item,
    User,
    utcnow,
)

__all__ = [
    "sync_items",
    "ensure_user",
    "insert_user",
    "get_or_create_annotator",
    "start_session",
    "record_impression",
    "insert_impression",
    "record_feedback",
    "record_feedback_batch",
    "record_asset",
    "record_eval_run",
    # reads, from annotation.frames
    "feedback_frame",
    "impressions_frame",
    "preferences_frame",
    "assets_frame",
    "eval_runs_frame",
    "annotators_frame",
    "interactions_frame",
    "feedback_counts",
    "model_feedback_rates",
    "DEFAULT_WEIGHTS",
    "LIMITS",
]

LIMITS = {
    "slate_items": 1_000,  # items on one impression
    "batch_events": 100_000,  # events in one record_feedback_batch call
    "prompt_chars": 8_000,
    "text_chars": 8_000,
    "dwell_ms": 86_400_000,  # a day
    "time_spent_ms": 86_400_000,
    "overlap": 100,
    "lease_seconds": 7 * 86_400,
}
_IN_CHUNK = 500  # ids per IN (...) clause: well under SQLite's bound-parameter limit
_MAX_INT = 2**63 - 1
_ASSET_FIELDS = {
    "kind", "item_id", "user_id", "generator", "fallback", "prompt", "negative_prompt", "seed", "params", "path",
    "text", "content_hash", "latency_ms", "personalized", "cache_hit", "event_id",
}
_ASSET_REQUIRED = {"kind", "item_id", "generator", "prompt", "content_hash", "latency_ms", "personalized", "event_id"}


# --------------------------------------------------------------------------------------------------------------
# helpers


def _dialect_insert(session: Session):
    """The `insert` construct of the session's dialect (it has `on_conflict_do_nothing`)."""
    return _insert_of(session.get_bind().dialect.name)


def _insert_of(name: str):
    """The `insert` construct of the dialect called `name` ("sqlite" or "postgresql")."""
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - make_engine only builds these two
        raise RuntimeError(f"unsupported database dialect {name!r}")
    return insert


def _insert_once(session: Session, model: type, values: dict[str, Any] | list[dict[str, Any]],
                 conflict: Sequence[str] = ("event_id",), returning: bool = True):
    """INSERT ... ON CONFLICT (conflict) DO NOTHING. Returns the new primary key (None on a conflict) for one
    row, or with `returning=False` the number of rows inserted."""
    statement = _dialect_insert(session)(model).values(values).on_conflict_do_nothing(index_elements=list(conflict))
    pk = model.__mapper__.primary_key[0]
    result = session.execute(statement.returning(pk))
    if returning:
        return result.scalar_one_or_none()
    return len(result.all())  # rows actually inserted (rowcount is not reliable for multi-row VALUES)


def _chunks(values: Sequence, size: int = _IN_CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing(session: Session, column, values: Iterable) -> set:
    values = list(dict.fromkeys(values))
    found: set = set()
    connection = session.connection()  # Core, not the ORM: plain values, none of the ORM's per-statement work
    for chunk in _chunks(values):
        found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _require_user(session: Session, user_id: Any, name: str = "user_id") -> str:
    return _stored_user(session, v.text(user_id, name, ID_LEN), name)


def _stored_user(session: Session, user_id: str, name: str = "user_id") -> str:
    """`user_id`, already checked as an id, when it is a stored user."""
    if session.get(User, user_id) is None:
        raise UnknownUserError(f"{name} {user_id!r} is not a known user: create it first with store.ensure_user")
    return user_id


def _require_items(session: Session, item_ids: Sequence[str], name: str = "item_id") -> None:
    missing = set(item_ids) - _existing(session, Item.item_id, item_ids)
    if missing:
        shown = sorted(missing)[:5]
        raise UnknownItemError(
            f"{name} must be in the item catalog (store.sync_items); {len(missing)} unknown, e.g. {shown}"
        )


def _require_annotator(session: Session, annotator_id: Any) -> Annotator:
    annotator_id = v.integer(annotator_id, "annotator_id", 1, _MAX_INT)
    annotator = session.get(Annotator, annotator_id)
    if annotator is None:
        raise UnknownAnnotatorError(f"annotator_id {annotator_id} does not exist (store.get_or_create_annotator)")
    return annotator


# --------------------------------------------------------------------------------------------------------------
# people and the catalog


def sync_items(session: Session, items) -> int:
    """Insert or update the item catalog from a DataFrame with item_id, title and optional year, genres.

    Returns the number of rows given. Item ids are strings (ml-100k "242"); titles are at most 512 characters.
    """
    import pandas as pd

    if not isinstance(items, pd.DataFrame):
        raise InvalidInputError(f"items must be a pandas DataFrame, got {type(items).__name__}")
    missing = {"item_id", "title"} - set(items.columns)
    if missing:
        raise InvalidInputError(f"items must have columns item_id and title, missing {sorted(missing)}")
    rows = []
    now = utcnow()
    has_year, has_genres = "year" in items.columns, "genres" in items.columns
    for index, record in enumerate(items.to_dict("records")):
        item_id = v.text(record["item_id"], f"items.item_id (row {index})", ID_LEN)
        title = v.text(record["title"], f"items.title (row {index})", TITLE_LEN, allow_empty=True)
        year = record.get("year") if has_year else None
        if year is None or pd.isna(year):
            year = None
        else:  # a year column with gaps arrives as float (1995.0): accept whole numbers only
            if isinstance(year, float) and year.is_integer():
                year = int(year)
            year = v.integer(year, f"items.year (row {index})", 0, 9999)
        genres = record.get("genres") if has_genres else None
        if genres is None or (not isinstance(genres, (str, list, tuple)) and not hasattr(genres, "tolist")):
            genres = []
        elif isinstance(genres, str):
            genres = [g for g in genres.split("|") if g]
        else:
            genres = [str(g) for g in list(genres)]
        rows.append({"item_id": item_id, "title": title, "year": year, "genres": genres, "synced_at": now})
    ids = [row["item_id"] for row in rows]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise InvalidInputError(f"items.item_id must be unique, got duplicates {dupes}")
    insert = _dialect_insert(session)
    statement = insert(Item)
    statement = statement.on_conflict_do_update(
        index_elements=["item_id"], set_={c: statement.excluded[c] for c in ("title", "year", "genres", "synced_at")})
    for chunk in _chunks(rows, 10_000):  # executemany: the driver batches the rows (a million items in seconds)
        session.execute(statement, chunk)
    session.expire_all()
    return len(rows)


def ensure_user(session: Session, user_id: str, kind: str = "dataset") -> User:
    """The user `user_id`, created when new. kind: "dataset" (an ml-100k id) or "new" (made by onboarding).

    An existing user keeps the kind it was created with.
    """
    user_id = v.text(user_id, "user_id", ID_LEN)
    kind = v.choice(kind, "kind", USER_KINDS)
    insert_user(session, user_id, kind)
    return session.get(User, user_id, populate_existing=True)


def insert_user(session: Session, user_id: str, kind: str) -> None:
    """`ensure_user`'s write, unchecked (see the module docstring): the user is stored when new."""
    _insert_once(session, User, {"user_id": user_id, "kind": kind, "created_at": utcnow()},
                 conflict=("user_id",), returning=False)


def get_or_create_annotator(session: Session, name: str, role: str = "annotator") -> Annotator:
    """The annotator called `name` (surrounding spaces stripped), created with `role` when new.

    An existing annotator keeps its role; change roles explicitly, not by signing in with another one.
    """
    name = v.text(name, "name", NAME_LEN).strip()
    role = v.choice(role, "role", ROLES)
    _insert_once(session, Annotator, {"name": name, "role": role, "created_at": utcnow()},
                 conflict=("name",), returning=False)
    return session.scalars(select(Annotator).where(Annotator.name == name)).one()


def claim_annotator_token(session: Session, annotator_id: int, token_hash: str) -> bool:
    """Give the annotator `annotator_id` the token whose sha256 (64 hex digits) is `token_hash`, unless they have
    one already: True when this call set it. A conditional UPDATE, so of two concurrent first sign-ins with one
    name exactly one wins, on SQLite and PostgreSQL alike."""
    token_hash = v.text(token_hash, "token_hash", 64)
    if len(token_hash) != 64 or any(c not in "0123456789abcdef" for c in token_hash):
        raise InvalidInputError(f"token_hash: expected 64 lower-case hex digits (a sha256), got {token_hash!r:.80}")
    done = session.execute(update(Annotator).where(Annotator.id == v.integer(annotator_id, "annotator_id", 1, 2**62),
                                                   Annotator.token_hash.is_(None)).values(token_hash=token_hash))
    return done.rowcount == 1


def start_session(session: Session, session_id, user_id: str | None = None, annotator_id: int | None = None,
                  user_agent: str | None = None) -> AppSession:
    """Record (or touch) an app session, keyed by a client-generated UUID; later calls update last_seen_at
    and fill in a user or annotator that was not known at the start."""
    session_id = v.event_id(session_id, "session_id")
    if user_id is not None:
        user_id = _require_user(session, user_id)
    if annotator_id is not None:
        annotator_id = _require_annotator(session, annotator_id).id
    user_agent = v.text(user_agent, "user_agent", QUERY_LEN, optional=True, allow_empty=True)
    now = utcnow()
    _insert_once(session, AppSession, {"id": session_id, "user_id": user_id, "annotator_id": annotator_id,
                                       "user_agent": user_agent, "started_at": now, "last_seen_at": now},
                 conflict=("id",), returning=False)
    row = session.get(AppSession, session_id, populate_existing=True, with_for_update=True)
    row.last_seen_at = now
    row.user_id = row.user_id or user_id
    row.annotator_id = row.annotator_id or annotator_id
    session.flush()
    return row


# --------------------------------------------------------------------------------------------------------------
# impressions and feedback


def record_impression(session: Session, event_id, user_id: str, model: str | Sequence[str],
                      item_ids: Sequence[str], contributors: Sequence[str] | None = None,
                      context: Mapping[str, Any] | None = None, session_id=None, at: dt.datetime | None = None
                      ) -> Impression:
    """Record the slate `item_ids` (in display order) shown to `user_id`.

    model: the model that ranked the slate, or two models (a, b) for an interleaved slate, in which case
    `contributors[i]` (one of a, b) is the model that placed item i. context: {"tab": ..., "query": ..., any
    other JSON}; tab and query are stored in their own columns. `at` defaults to now (naive UTC).
    """
    event_id = v.event_id(event_id)
    user_id = v.text(user_id, "user_id", ID_LEN)
    if isinstance(model, str):
        models = [model]
    elif isinstance(model, Sequence) and len(model) == 2:
        models = list(model)
    else:
        raise InvalidInputError(f"model must be a model name or a pair of names (interleaving), got {model!r}")
    for i, name in enumerate(models):
        v.text(name, f"model[{i}]" if len(models) == 2 else "model", MODEL_LEN)
    if len(models) == 2 and models[0] == models[1]:
        raise InvalidInputError(f"model must name two different models to interleave, got {models}")
    if isinstance(item_ids, str) or not isinstance(item_ids, Sequence) or not item_ids:
        raise InvalidInputError(f"item_ids must be a non-empty list of item id strings, got {item_ids!r}")
    if len(item_ids) > LIMITS["slate_items"]:
        raise InvalidInputError(f"item_ids must have at most {LIMITS['slate_items']} items, got {len(item_ids)}")
    item_ids = [v.text(item, f"item_ids[{i}]", ID_LEN) for i, item in enumerate(item_ids)]
    if len(set(item_ids)) != len(item_ids):
        raise InvalidInputError(f"item_ids must not repeat an item, got {item_ids}")
    if len(models) == 2:
        if contributors is None or isinstance(contributors, str) or len(contributors) != len(item_ids):
            raise InvalidInputError(
                f"contributors must give, for each of the {len(item_ids)} items, which of {models} placed it; "
                f"got {contributors!r}"
            )
        bad = [c for c in contributors if c not in models]
        if bad:
            raise InvalidInputError(f"contributors must each be one of {models}, got {bad[:5]}")
        contributors = list(contributors)
    elif contributors is not None:
        raise InvalidInputError(
            f"contributors are only for interleaved slates: pass model=(a, b), got model={model!r} and contributors"
        )
    context = v.json_object(context, "context", optional=True) or {}
    tab = v.text(context.pop("tab", None), "context['tab']", 32, optional=True)
    query = v.text(context.pop("query", None), "context['query']", QUERY_LEN, optional=True, allow_empty=True)
    if session_id is not None:
        session_id = v.event_id(session_id, "session_id")
        if session.get(AppSession, session_id) is None:
            raise InvalidInputError(f"session_id {session_id} is not a recorded app session (store.start_session)")
    at = v.timestamp(at)
    if session.scalar(select(Impression.id).where(Impression.event_id == event_id)) is None:
        _stored_user(session, user_id)
        _require_items(session, item_ids, "item_ids")
    return insert_impression(session, event_id, user_id, models, item_ids, contributors,
                             context={**context, "tab": tab, "query": query}, session_id=session_id, at=at)


def insert_impression(session: Session, event_id: str, user_id: str, models: Sequence[str], item_ids: Sequence[str],
                      contributors: Sequence[str] | None = None, *, context: Mapping[str, Any] | None = None,
                      session_id: str | None = None, at: dt.datetime | None = None) -> Impression:
    """`record_impression`'s write, unchecked (see the module docstring): `models` is [model] or [a, b]; the
    context's "tab" and "query" go to their own columns. Idempotent by `event_id` like every write: a replay
    returns the stored impression, a different payload under the same UUID raises `EventConflictError`."""
    context = dict(context or {})
    tab, query = context.pop("tab", None), context.pop("query", None)
    sent = {"user_id": user_id, "model": models[0], "model_b": models[1] if len(models) == 2 else None}
    new_id = _insert_once(session, Impression, {
        "event_id": event_id, **sent, "session_id": session_id, "tab": tab, "query": query,
        "context": context or None, "created_at": at or utcnow(), "n_items": len(item_ids),
        "n_items_b": sum(c == models[1] for c in contributors) if contributors else 0,
    })
    if new_id is not None:
        session.execute(ImpressionItem.__table__.insert(), [
            {"impression_id": new_id, "position": i, "item_id": item,
             "contributor": contributors[i] if contributors else None}
            for i, item in enumerate(item_ids)
        ])
        return session.get(Impression, new_id, options=[selectinload(Impression.items)])
    stored = session.scalars(select(Impression).where(Impression.event_id == event_id)).one()
    _check_replay("impression", event_id, {k: getattr(stored, k) for k in sent} | {"item_ids": stored.item_ids},
                  sent | {"item_ids": list(item_ids)})
    return stored


def _feedback_value(kind: str, value: Any, name: str) -> float | None:
    if kind == "rating":
        rating = v.number(value, name, 1, 5)
        if rating != int(rating):
            raise InvalidInputError(f"{name} of a rating must be a whole number from 1 to 5, got {value!r}")
        return rating
    if kind == "dwell":
        return v.number(value, f"{name} (dwell milliseconds)", 0, LIMITS["dwell_ms"])
    if value is not None:
        raise InvalidInputError(f"{name} must be None for a {kind!r} event (only rating and dwell carry a value), "
                                f"got {value!r}")
    return None


def _clean_feedback(event: Mapping[str, Any], where: str) -> dict[str, Any]:
    allowed = {"event_id", "user_id", "item_id", "kind", "impression_id", "value", "at"}
    unknown = set(event) - allowed
    if unknown:
        raise InvalidInputError(f"{where} has unknown fields {sorted(unknown)}; expected {sorted(allowed)}")
    for key in ("event_id", "user_id", "item_id", "kind"):
        if key not in event:
            raise InvalidInputError(f"{where} is missing {key!r}")
    kind = v.choice(event["kind"], f"{where}.kind", FEEDBACK_KINDS)
    return {
        "event_id": v.event_id(event["event_id"], f"{where}.event_id"),
        "user_id": v.text(event["user_id"], f"{where}.user_id", ID_LEN),
        "item_id": v.text(event["item_id"], f"{where}.item_id", ID_LEN),
        "kind": kind,
        "value": _feedback_value(kind, event.get("value"), f"{where}.value"),
        "impression_id": event.get("impression_id"),
        "created_at": v.timestamp(event.get("at"), f"{where}.at"),
    }


def _resolve_impressions(session: Session, rows: list[dict[str, Any]]) -> None:
    """Replace each row's impression reference (id or UUID) by the integer id; check user and item match."""
    refs = {row["impression_id"] for row in rows if row["impression_id"] is not None}
    if not refs:
        return
    by_uuid = {r: v.event_id(r, "impression_id") for r in refs if isinstance(r, str)}
    ints = [v.integer(r, "impression_id", 1, _MAX_INT) for r in refs if not isinstance(r, str)]
    id_of: dict[Any, int] = {}
    users: dict[int, str] = {}
    for chunk in _chunks(list(by_uuid.values())):
        for pk, ev, user in session.execute(
            select(Impression.id, Impression.event_id, Impression.user_id).where(Impression.event_id.in_(chunk))
        ):
            users[pk] = user
            id_of.update({ref: pk for ref, canon in by_uuid.items() if canon == ev})
    for chunk in _chunks(ints):
        for pk, user in session.execute(select(Impression.id, Impression.user_id).where(Impression.id.in_(chunk))):
            users[pk] = user
            id_of[pk] = pk
    missing = refs - set(id_of)
    if missing:
        raise UnknownImpressionError(f"impression_id must be a recorded impression, unknown: {sorted(map(str, missing))[:5]}")
    slate: dict[tuple[int, str], tuple[int, str]] = {}  # (impression, item) -> (position, credited model)
    for chunk in _chunks(sorted(users)):
        for pk, item, position, credited in session.execute(
            select(ImpressionItem.impression_id, ImpressionItem.item_id, ImpressionItem.position,
                   func.coalesce(ImpressionItem.contributor, Impression.model))
            .join(Impression, Impression.id == ImpressionItem.impression_id)
            .where(ImpressionItem.impression_id.in_(chunk))
        ):
            slate[(pk, item)] = (position, credited)
    for row in rows:
        ref = row["impression_id"]
        if ref is None:
            continue
        pk = id_of[ref]
        if users[pk] != row["user_id"]:
            raise InvalidInputError(
                f"impression_id {ref} was shown to user {users[pk]!r}, not to user_id {row['user_id']!r}"
            )
        if (pk, row["item_id"]) not in slate:
            raise InvalidInputError(f"item_id {row['item_id']!r} is not on the slate of impression_id {ref}")
        row["impression_id"] = pk
        row["position"], row["model"] = slate[(pk, row["item_id"])]


@functools.lru_cache(maxsize=4)
def _feedback_statements(dialect: str):
    """The statements of the feedback hot paths, built once per dialect (immutable constructs)."""
    check = select(
        select(FeedbackEvent.id).where(FeedbackEvent.event_id == bindparam("event_id")).scalar_subquery(),
        exists().where(User.user_id == bindparam("user_id")),
        exists().where(Item.item_id == bindparam("item_id")),
        select(Impression.user_id).where(Impression.id == bindparam("imp")).scalar_subquery(),
        select(ImpressionItem.position)
        .where(ImpressionItem.impression_id == bindparam("imp"), ImpressionItem.item_id == bindparam("item_id"))
        .scalar_subquery(),
        select(func.coalesce(ImpressionItem.contributor, Impression.model))
        .join(Impression, Impression.id == ImpressionItem.impression_id)
        .where(ImpressionItem.impression_id == bindparam("imp"), ImpressionItem.item_id == bindparam("item_id"))
        .scalar_subquery(),
    )
    insert = _insert_of(dialect)
    insert_returning = (
        insert(FeedbackEvent)
        .values({c: bindparam(c) for c in _FEEDBACK_COLUMNS})
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(FeedbackEvent)
    )
    return check, insert_returning


def record_feedback(session: Session, event_id, user_id: str, item_id: str, kind: str,
                    impression_id: int | str | None = None, value: float | None = None,
                    at: dt.datetime | None = None) -> FeedbackEvent:
    """Record one feedback event; returns the stored row (the earlier one when `event_id` was seen before).

    kind: click | like | dislike | rating | skip | dwell. value: the rating (a whole number 1-5) or the dwell
    time in milliseconds; None for the other kinds. impression_id: the impression's integer id or event UUID;
    the item must be on that slate and the impression must have been shown to `user_id`.
    """
    row = _clean_feedback({"event_id": event_id, "user_id": user_id, "item_id": item_id, "kind": kind,
                           "impression_id": impression_id, "value": value, "at": at}, "event")
    keys = ("user_id", "item_id", "kind", "value")
    if isinstance(row["impression_id"], str):
        _resolve_impressions(session, [row])  # UUID -> id (and the slate checks)
    imp = row["impression_id"]
    if imp is not None:
        imp = v.integer(imp, "impression_id", 1, _MAX_INT)
    # One round trip answers everything the hot path needs: stored already? user, item, slate known?
    check, insert_returning = _feedback_statements(session.get_bind().dialect.name)
    stored_id, user_ok, item_ok, shown_to, position, credited = session.execute(
        check, {"event_id": row["event_id"], "user_id": row["user_id"], "item_id": row["item_id"], "imp": imp}
    ).one()
    if stored_id is None:
        if not user_ok:
            raise UnknownUserError(f"user_id {row['user_id']!r} is not a known user: create it first with "
                                   f"store.ensure_user")
        if not item_ok:
            raise UnknownItemError(f"item_id must be in the item catalog (store.sync_items), got {row['item_id']!r}")
        if imp is not None:
            if shown_to is None:
                raise UnknownImpressionError(f"impression_id {imp} is not a recorded impression")
            if shown_to != row["user_id"]:
                raise InvalidInputError(f"impression_id {imp} was shown to user {shown_to!r}, not to user_id "
                                        f"{row['user_id']!r}")
            if position is None:
                raise InvalidInputError(f"item_id {row['item_id']!r} is not on the slate of impression_id {imp}")
        values = dict(row, impression_id=imp, created_at=row["created_at"] or utcnow(), model=credited,
                      position=position)
        inserted = session.scalars(insert_returning, values).one_or_none()
        if inserted is not None:
            return inserted
        stored_id = session.scalars(select(FeedbackEvent.id).where(FeedbackEvent.event_id == row["event_id"])).one()
    stored = session.get(FeedbackEvent, stored_id)
    _check_replay("feedback event", row["event_id"], {k: getattr(stored, k) for k in keys}, {k: row[k] for k in keys})
    return stored


def record_feedback_batch(session: Session, events: Iterable[Mapping[str, Any]]) -> int:
    """Record many feedback events at once (annotation.ingest: one statement on PostgreSQL, one executemany on
    SQLite); returns how many were new.

    Each event is a dict with the keyword arguments of `record_feedback` (event_id, user_id, item_id, kind,
    and optionally impression_id, value, at). The whole batch is validated before anything is written; events
    already stored (retries) are skipped, and one whose UUID is stored with another payload raises
    `EventConflictError`. Duplicated UUIDs inside one batch must carry the same payload and count once.
    """
    if isinstance(events, (str, bytes, Mapping)):
        raise InvalidInputError(f"events must be an iterable of event dicts, got {type(events).__name__}")
    rows = []
    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise InvalidInputError(f"events[{i}] must be a dict, got {type(event).__name__}")
        rows.append(_clean_feedback(event, f"events[{i}]"))
        if len(rows) > LIMITS["batch_events"]:
            raise InvalidInputError(f"events must hold at most {LIMITS['batch_events']} events per call")
    if not rows:
        return 0
    keys = ("user_id", "item_id", "kind", "value")
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen = unique.setdefault(row["event_id"], row)
        if seen is not row:
            _check_replay("feedback event (twice in this batch)", row["event_id"], {k: seen[k] for k in keys},
                          {k: row[k] for k in keys})
    rows = list(unique.values())
    connection = session.connection()
    # One round trip for both look-ups on PostgreSQL (annotation.ingest)
    missing_users, missing_items = missing_references(connection, {row["user_id"] for row in rows},
                                                      {row["item_id"] for row in rows})
    if missing_users:
        raise UnknownUserError(f"user_id must be a known user (store.ensure_user); unknown: {sorted(missing_users)[:5]}")
    if missing_items:
        raise UnknownItemError(f"item_id must be in the item catalog (store.sync_items); {len(missing_items)} unknown, "
                               f"e.g. {sorted(missing_items)[:5]}")
    _resolve_impressions(session, rows)
    now = utcnow()
    rows = [{"model": None, "position": None, **row, "created_at": row["created_at"] or now} for row in rows]
    # annotation.ingest: exactly once through ON CONFLICT on both engines; PostgreSQL in one statement per batch
    return insert_feedback(connection, rows)


# --------------------------------------------------------------------------------------------------------------
# generated assets


def record_asset(session: Session, asset: Mapping[str, Any] | Any, event_id=None) -> GeneratedAsset:
    """Record a generated cover or caption with its provenance; returns the stored row.

    `asset` is a dict (or a `generation.assets.Asset` dataclass) with the Asset fields: kind ("cover" |
    "caption"), item_id, user_id (None for a generic asset), generator (model id or "fallback"), fallback,
    prompt, negative_prompt, seed, params, path (covers), text (captions), content_hash, latency_ms,
    personalized, cache_hit, plus `event_id` (in the dict or as the keyword). A personalized asset needs a user.
    """
    if dataclasses.is_dataclass(asset) and not isinstance(asset, type):
        asset = dataclasses.asdict(asset)
    if not isinstance(asset, Mapping):
        raise InvalidInputError(f"asset must be a dict or an Asset dataclass, got {type(asset).__name__}")
    asset = dict(asset)
    if event_id is not None:
        if asset.get("event_id") not in (None, event_id):
            raise InvalidInputError(f"event_id given twice with different values: {asset['event_id']!r} and {event_id!r}")
        asset["event_id"] = event_id
    unknown = set(asset) - _ASSET_FIELDS
    if unknown:
        raise InvalidInputError(f"asset has unknown fields {sorted(unknown)}; expected {sorted(_ASSET_FIELDS)}")
    missing = _ASSET_REQUIRED - {k for k, val in asset.items() if val is not None}
    if missing:
        raise InvalidInputError(f"asset is missing {sorted(missing)}")
    kind = v.choice(asset["kind"], "asset['kind']", ASSET_KINDS)
    row = {
        "event_id": v.event_id(asset["event_id"], "asset['event_id']"),
        "kind": kind,
        "item_id": v.text(asset["item_id"], "asset['item_id']", ID_LEN),
        "user_id": v.text(asset.get("user_id"), "asset['user_id']", ID_LEN, optional=True),
        "generator": v.text(asset["generator"], "asset['generator']", MODEL_LEN),
        "fallback": v.boolean(asset.get("fallback", asset["generator"] == "fallback"), "asset['fallback']"),
        "prompt": v.text(asset["prompt"], "asset['prompt']", LIMITS["prompt_chars"], allow_empty=True),
        "negative_prompt": v.text(asset.get("negative_prompt"), "asset['negative_prompt']", LIMITS["prompt_chars"],
                                  optional=True, allow_empty=True),
        "seed": v.integer(asset.get("seed"), "asset['seed']", -(2**63), _MAX_INT, optional=True),
        "params": v.json_object(asset.get("params") or {}, "asset['params']"),
        "path": v.text(asset.get("path"), "asset['path']", PATH_LEN, optional=True),
        "text": v.text(asset.get("text"), "asset['text']", LIMITS["text_chars"], optional=True, allow_empty=True),
        "content_hash": v.text(asset["content_hash"], "asset['content_hash']", HASH_LEN),
        "latency_ms": v.number(asset["latency_ms"], "asset['latency_ms']", 0, 3_600_000),
        "personalized": v.boolean(asset["personalized"], "asset['personalized']"),
        "cache_hit": v.boolean(asset.get("cache_hit", False), "asset['cache_hit']"),
    }
    if kind == "cover" and row["path"] is None:
        raise InvalidInputError("asset['path'] must be the image file of a cover, got None")
    if kind == "caption" and row["text"] is None:
        raise InvalidInputError("asset['text'] must be the caption text, got None")
    if row["personalized"] and row["user_id"] is None:
        raise InvalidInputError("asset['user_id'] must name the user a personalized asset was made for, got None")
    compared = ("kind", "item_id", "user_id", "generator", "content_hash", "personalized")
    stored = session.scalars(select(GeneratedAsset).where(GeneratedAsset.event_id == row["event_id"])).one_or_none()
    if stored is None:
        _require_items(session, [row["item_id"]], "asset['item_id']")
        if row["user_id"] is not None:
            _require_user(session, row["user_id"], "asset['user_id']")
        new_id = _insert_once(session, GeneratedAsset, dict(row, created_at=utcnow()))
        if new_id is not None:
            return session.get(GeneratedAsset, new_id)
        stored = session.scalars(select(GeneratedAsset).where(GeneratedAsset.event_id == row["event_id"])).one()
    _check_replay("asset", row["event_id"], {k: getattr(stored, k) for k in compared}, {k: row[k] for k in compared})
    return stored


# --------------------------------------------------------------------------------------------------------------
# offline evaluation


def record_eval_run(session: Session, model: str, dataset: str, split: str, metrics: Mapping[str, float],
                    config: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> EvalRun:
    """Store the offline metrics of one model on one dataset split, e.g. {"recall@10": 0.21, "ndcg@10": 0.12}."""
    model = v.text(model, "model", MODEL_LEN)
    dataset = v.text(dataset, "dataset", MODEL_LEN)
    split = v.text(split, "split", 64)
    if not isinstance(metrics, Mapping) or not metrics:
        raise InvalidInputError(f"metrics must be a non-empty dict of metric name -> number, got {metrics!r}")
    clean = {}
    for name, value in metrics.items():
        v.text(name, "metrics key", 64)
        clean[name] = v.number(value, f"metrics[{name!r}]", -1e12, 1e12)
    config = v.json_object(config or {}, "config")
    run = EvalRun(model=model, dataset=dataset, split=split, metrics=clean, config=config,
                  created_at=v.timestamp(at) or utcnow())
    session.add(run)
    session.flush()
    return run
