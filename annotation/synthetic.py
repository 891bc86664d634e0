"""A fast, seeded bulk loader of synthetic but consistent data, for benchmarks and dashboard development.

    from annotation.synthetic import populate
    counts = populate(engine, n_events=1_000_000, seed=0)     # ~1M feedback events, their slates, labels

It bypasses the store's per-event validation (that is what the store benchmarks measure) and writes with
the driver's fastest path: `executemany` on SQLite, `COPY` on PostgreSQL. Everything it writes is consistent
with the schema and with what the store would accept: each feedback event is about an item on a slate that
was shown to that user, ratings are 1-5, pairs compare two assets of one kind, labels have history rows.
The same seed gives the same rows (times are relative to `end`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from annotation.errors import InvalidInputError
from annotation.models import utcnow

__all__ = ["populate", "MODELS", "INTERLEAVED"]

MODELS = ("ease", "bpr", "lightgcn", "itemknn", "pop", "vbpr")
INTERLEAVED = (("ease", "bpr"), ("ease", "vbpr"), ("lightgcn", "pop"))
GENERATORS = ("stabilityai/sd-turbo", "fallback")
KINDS = (("click", 0.50), ("like", 0.15), ("dislike", 0.05), ("rating", 0.10), ("skip", 0.15), ("dwell", 0.05))
TABS = ("home", "search", "similar")
SLATE = 10  # items per impression
EVENTS_PER_IMPRESSION = 4


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def populate(target: Engine | Session, n_events: int, seed: int = 0, *, n_users: int = 943, n_items: int = 1682,
             days: int = 30, end: dt.datetime | None = None, n_annotators: int = 5) -> dict[str, int]:
    """Write about `n_events` feedback events (and the impressions, users, items, assets, pairs, labels and
    eval runs around them) spread over the `days` before `end` (default now, naive UTC).

    `target` is an Engine (a transaction is opened and committed here) or a Session (the caller commits).
    Users are "1".."n_users" and items "1".."n_items" (ml-100k's id ranges); existing ones are kept.
    Returns the number of rows written per table.
    """
    if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 0:
        raise InvalidInputError(f"n_events must be a non-negative integer, got {n_events!r}")
    for name, value in (("n_users", n_users), ("n_items", n_items), ("days", days), ("n_annotators", n_annotators)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    if n_items < SLATE:
        raise InvalidInputError(f"n_items must be at least {SLATE} (one slate), got {n_items}")
    end = end or utcnow()
    if isinstance(target, Engine):
        with target.begin() as connection:
            return _populate(connection, n_events, seed, n_users, n_items, days, end, n_annotators)
    if isinstance(target, Session):
        return _populate(target.connection(), n_events, seed, n_users, n_items, days, end, n_annotators)
    raise InvalidInputError(f"target must be a SQLAlchemy Engine or Session, got {type(target).__name__}")


def _populate(connection, n_events, seed, n_users, n_items, days, end, n_annotators) -> dict[str, int]:
    rng = random.Random(seed)
    dialect = connection.dialect.name
    span = dt.timedelta(days=days).total_seconds()
    start = end - dt.timedelta(days=days)
    now = utcnow()
    counts: dict[str, int] = {}

    def next_id(table: str) -> int:
        return int(connection.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1

    users = [(str(u), "dataset", now) for u in range(1, n_users + 1)]
    items = [(str(i), f"Synthetic item {i}", 1990 + i % 30, json.dumps([f"genre{i % 7}"]), now)
             for i in range(1, n_items + 1)]
    _insert_ignore(connection, "users", ("user_id", "kind", "created_at"), users, "user_id")
    _insert_ignore(connection, "items", ("item_id", "title", "year", "genres", "synced_at"), items, "item_id")
    annotators = [(f"synthetic-annotator-{a}", "annotator", now) for a in range(1, n_annotators + 1)]
    _insert_ignore(connection, "annotators", ("name", "role", "created_at"), annotators, "name")
    annotator_ids = [row[0] for row in connection.execute(
        text("SELECT id FROM annotators WHERE name LIKE 'synthetic-annotator-%' ORDER BY id")).all()][:n_annotators]

    # 1. impressions (slates) and their items
    n_impressions = max(1, -(-n_events // EVENTS_PER_IMPRESSION)) if n_events else 0
    first_impression = next_id("impressions")
    # UUIDs depend on where this batch starts too, so populating twice with one seed appends instead of clashing
    ids = random.Random(f"vitrine-synthetic:{seed}:{first_impression}:{next_id('preference_labels')}")
    impressions, slots, slates = [], [], []
    for k in range(n_impressions):
        pk = first_impression + k
        user = str(rng.randint(1, n_users))
        at = start + dt.timedelta(seconds=rng.random() * span)
        slate = [str(i) for i in rng.sample(range(1, n_items + 1), SLATE)]
        if rng.random() < 0.2:
            a, b = rng.choice(INTERLEAVED)
            contributors = [a if rng.random() < 0.5 else b for _ in slate]
            model, model_b = a, b
        else:
            model, model_b, contributors = rng.choice(MODELS), None, [None] * SLATE
        tab = rng.choice(TABS)
        impressions.append((pk, _uuid(ids), user, model, model_b, tab, "synthetic query" if tab == "search" else None,
                            at, SLATE, sum(who == model_b for who in contributors) if model_b else 0))
        slots.extend((pk, position, item, who) for position, (item, who) in enumerate(zip(slate, contributors)))
        slates.append((pk, user, at, slate, [who or model for who in contributors]))
    _bulk(connection, "impressions", ("id", "event_id", "user_id", "model", "model_b", "tab", "query", "created_at",
                                      "n_items", "n_items_b"), impressions)
    _bulk(connection, "impression_items", ("impression_id", "position", "item_id", "contributor"), slots)
    counts["impressions"], counts["impression_items"] = len(impressions), len(slots)

    # 2. feedback events, each about an item on a slate shown to that user, seconds to minutes after it
    names = [k for k, _ in KINDS]
    cumulative = [sum(w for _, w in KINDS[: i + 1]) for i in range(len(KINDS))]
    first_event = next_id("feedback_events")
    events = []
    for k in range(n_events):
        pk, user, at, slate, credited = slates[k % n_impressions] if k < n_impressions else rng.choice(slates)
        kind = names[_pick(cumulative, rng.random())]
        value = float(rng.randint(1, 5)) if kind == "rating" else (float(rng.randint(500, 120_000)) if kind == "dwell" else None)
        position = rng.randrange(SLATE)
        events.append((first_event + k, _uuid(ids), user, slate[position], pk, kind, value,
                       at + dt.timedelta(seconds=rng.randint(1, 600)), credited[position], position))
    _bulk(connection, "feedback_events",
          ("id", "event_id", "user_id", "item_id", "impression_id", "kind", "value", "created_at", "model", "position"),
          events)
    counts["feedback_events"] = len(events)

    # 3. generated assets, pairs (personalized vs generic cover of one item), labels with some changed ones
    n_pairs = max(1, n_events // 1000) if n_events else 0
    first_asset, first_pair, first_label = next_id("generated_assets"), next_id("pair_tasks"), next_id("preference_labels")
    assets, pairs, assignments, labels = [], [], [], []
    for p in range(n_pairs):
        item, user = str(rng.randint(1, n_items)), str(rng.randint(1, n_users))
        at = start + dt.timedelta(seconds=rng.random() * span)
        a_id, b_id = first_asset + 2 * p, first_asset + 2 * p + 1
        for pk, personalized in ((a_id, True), (b_id, False)):
            generator = rng.choice(GENERATORS)
            assets.append((pk, _uuid(ids), "cover", item, user if personalized else None, generator,
                           generator == "fallback", f"a cover for item {item}", "blurry", rng.randint(0, 2**31),
                           json.dumps({"steps": 2}), f"assets/{pk}.png", None, f"{pk:064x}",
                           rng.uniform(50, 3000), personalized, False, at))
        pair_id = first_pair + p
        pairs.append((pair_id, f"cover:{a_id}:{b_id}:{user}:synthetic{seed}", "cover", a_id, b_id, user, 2, at))
        for annotator in rng.sample(annotator_ids, min(2, len(annotator_ids))):
            label_at = at + dt.timedelta(seconds=rng.randint(60, 3600))
            choice = rng.choices(("A", "B", "tie", "skip"), (0.45, 0.35, 0.15, 0.05))[0]
            supersedes = None
            if rng.random() < 0.05:  # a changed label: the old row stays as history
                old_id = first_label + len(labels)
                labels.append((old_id, _uuid(ids), pair_id, annotator, rng.choice(("A", "B")), rng.randint(800, 20_000),
                               "v1", False, None, label_at - dt.timedelta(seconds=5)))
                supersedes = old_id
            labels.append((first_label + len(labels), _uuid(ids), pair_id, annotator, choice, rng.randint(800, 20_000),
                           "v1", True, supersedes, label_at))
            assignments.append((pair_id, annotator, label_at, label_at, label_at, choice != "skip"))
    _bulk(connection, "generated_assets",
          ("id", "event_id", "kind", "item_id", "user_id", "generator", "fallback", "prompt", "negative_prompt", "seed",
           "params", "path", "text", "content_hash", "latency_ms", "personalized", "cache_hit", "created_at"), assets)
    _bulk(connection, "pair_tasks", ("id", "pair_key", "kind", "asset_a_id", "asset_b_id", "target_user_id",
                                     "slots_taken", "created_at"), pairs)
    _bulk(connection, "pair_assignments", ("pair_id", "annotator_id", "assigned_at", "expires_at", "completed_at",
                                           "holds_slot"), assignments)
    _bulk(connection, "preference_labels", ("id", "event_id", "pair_id", "annotator_id", "choice", "time_spent_ms",
                                            "guideline_version", "is_current", "supersedes_id", "created_at"), labels)
    # slots_taken must count the assignments that hold a slot (skips free theirs)
    connection.execute(text(
        "UPDATE pair_tasks SET slots_taken = (SELECT COUNT(*) FROM pair_assignments a "
        "WHERE a.pair_id = pair_tasks.id AND a.holds_slot) WHERE pair_key LIKE :key"), {"key": f"%:synthetic{seed}"})
    counts.update(generated_assets=len(assets), pair_tasks=len(pairs), preference_labels=len(labels))

    runs = []
    for model in MODELS:
        for split in ("random", "loo", "cold"):
            recall = rng.uniform(0.05, 0.35)
            runs.append((model, "ml-100k", split, json.dumps({"recall@10": recall, "ndcg@10": recall * 0.6}),
                         json.dumps({"seed": seed}), start + dt.timedelta(seconds=rng.random() * span)))
    _bulk(connection, "eval_runs", ("model", "dataset", "split", "metrics", "config", "created_at"), runs)
    counts["eval_runs"] = len(runs)
    if dialect == "postgresql":
        for table in ("impressions", "feedback_events", "generated_assets", "pair_tasks", "pair_assignments",
                      "preference_labels", "eval_runs"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))
    return counts


def _pick(cumulative: list[float], r: float) -> int:
    for i, edge in enumerate(cumulative):
        if r < edge:
            return i
    return len(cumulative) - 1


def _insert_ignore(connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], key: str) -> None:
    if not rows:
        return
    placeholders = ", ".join(f":{c}" for c in columns)
    verb = "INSERT OR IGNORE INTO" if connection.dialect.name == "sqlite" else "INSERT INTO"
    tail = "" if connection.dialect.name == "sqlite" else f" ON CONFLICT ({key}) DO NOTHING"
    connection.execute(text(f"{verb} {table} ({', '.join(columns)}) VALUES ({placeholders}){tail}"),
                       [dict(zip(columns, row)) for row in rows])


def _bulk(connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """The driver's fastest insert: executemany of tuples on SQLite, COPY on PostgreSQL."""
    if not rows:
        return
    raw = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        sql_rows = [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime) else v for v in row) for row in rows]
        raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        sql_rows)
        return
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
