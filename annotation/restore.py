"""Replay of the event sink (`annotation.sync`) into a store: how an empty database is rebuilt at start.

    restore(Session, "file:///mnt/sink")               # at start, on an empty database, before serving

Replay is idempotent: rows are inserted with ON CONFLICT DO NOTHING on their natural keys (event_id, pair key,
(pair, annotator), user id, annotator name, session id, item id, (name, kind, version) of a model version; eval
runs by model, dataset, split and time), and integer ids are remapped to the ids this database gives them.
Replaying the same sink twice adds nothing. A row whose parent is missing from the sink (which the sink's write
order prevents) is skipped and counted, never half-inserted. State the sink does not ship is derived as the store
leaves it: which label is current, which assignments are finished and hold a slot, each pair's `slots_taken`,
which model version is served.

One function per table, parents first (`_STEPS`); each reads the sink's rows of its table from a `_Replay` and
records the ids its children look up there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotation.models import (
    Annotator,
    AppSession,
    EvalRun,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    ImpressionItem,
    Item,
    ModelVersion,
    PairAssignment,
    PairTask,
    PreferenceLabel,
    User,
)
from annotation.sync import (
    _ASSET_COLUMNS,
    _KEYED_READERS,
    _VERSION_COLUMNS,
    LEASE_S,
    TABLES,
    _chunks,
    _latest_snapshots,
    _read_shards,
    _version_key,
    open_sink,
)

__all__ = ["RestoreResult", "restore", "store_is_empty"]

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    inserted: dict[str, int]  # rows added per table (0 everywhere when everything was there already)
    skipped: dict[str, int]  # rows left out because a row they refer to is missing from the sink
    seconds: float


def store_is_empty(session: Session) -> bool:
    """True when the store holds no people and no events (the item catalog may already be synced)."""
    for model in (User, Annotator, Impression, FeedbackEvent, GeneratedAsset, PreferenceLabel):
        if session.scalar(select(func.count()).select_from(select(model).limit(1).subquery())):
            return False
    return True


def restore(session_factory, sink_url: str) -> RestoreResult:
    """Replay every shard at `sink_url` into the store (one transaction); returns what was added.

    Meant for an empty store at start, before serving; on a store that already holds some of the rows it adds
    only the missing ones (replaying twice adds nothing). Needs a writing session factory.
    """
    clock = time.perf_counter()
    fs, root = open_sink(sink_url)
    data = {t: _dedupe(_read_shards(fs, root, t), "last" if t in _KEYED_READERS else "first") for t in TABLES
            if t != "model_versions"}
    data["model_versions"] = _latest_snapshots(_read_shards(fs, root, "model_versions"))
    with session_factory() as s, s.begin():
        replay = _Replay(s, data)
        for step in _STEPS:
            step(replay)
    skipped = {t: n for t, n in replay.skipped.items() if n}
    if skipped:
        log.warning("restore: rows left out because what they refer to is not in the sink: %s", skipped)
    return RestoreResult(inserted=replay.inserted, skipped=skipped, seconds=time.perf_counter() - clock)


@dataclass
class _Replay:
    """One replay: the sink's rows per table, what was inserted or skipped, and this database's ids of the
    parents that later tables refer to (by the natural keys the sink writes)."""

    s: Session
    data: dict[str, list[dict]]
    inserted: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    skipped: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TABLES})
    users: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    annotators: dict[str, int] = field(default_factory=dict)  # name -> id
    sessions: dict[Any, Any] = field(default_factory=dict)  # id -> id (present in this database)
    impressions: dict[str, int] = field(default_factory=dict)  # event_id -> id
    assets: dict[str, int] = field(default_factory=dict)  # event_id -> id
    versions: dict[str, int] = field(default_factory=dict)  # version key -> id
    pairs: dict[str, int] = field(default_factory=dict)  # the sink's pair uid -> id
    assigned_pairs: set[int] = field(default_factory=set)  # pairs whose assignments were replayed

    def insert(self, model, rows: list[dict], conflict: list[str]) -> int:
        """INSERT ... ON CONFLICT (conflict) DO NOTHING in chunks; returns the number of rows inserted."""
        pk = model.__mapper__.primary_key[0]
        return sum(len(self.s.execute(self.statement(model, chunk, conflict).returning(pk)).all())
                   for chunk in _chunks(rows))

    def statement(self, model, rows: list[dict], conflict: list[str]):
        from annotation.store import _dialect_insert

        return _dialect_insert(self.s)(model).values(rows).on_conflict_do_nothing(index_elements=conflict)

    def lookup(self, key_col, id_col, keys: Iterable) -> dict:
        out = {}
        for chunk in _chunks(set(keys)):
            out.update(dict(self.s.execute(select(key_col, id_col).where(key_col.in_(chunk))).all()))
        return out


def _people(r: _Replay) -> None:
    """Items, users and annotators: referred to by everything else."""
    data, s = r.data, r.s
    r.inserted["items"] = r.insert(Item, [
        {"item_id": x["item_id"], "title": x["title"], "year": x["year"], "genres": _loads(x["genres"]) or [],
         "synced_at": x["synced_at"]} for x in data["items"]], ["item_id"])
    r.inserted["users"] = r.insert(User, [
        {"user_id": x["user_id"], "kind": x["kind"], "created_at": x["created_at"]} for x in data["users"]],
        ["user_id"])
    r.inserted["annotators"] = r.insert(Annotator, [
        {"name": x["name"], "role": x["role"], "created_at": x["created_at"]} for x in data["annotators"]], ["name"])
    r.annotators = dict(s.execute(select(Annotator.name, Annotator.id)).all())
    r.users = set(s.scalars(select(User.user_id)))
    r.items = set(s.scalars(select(Item.item_id)))


def _sessions(r: _Replay) -> None:
    rows = [{"id": x["id"], "user_id": x["user_id"] if x["user_id"] in r.users else None,
             "annotator_id": r.annotators.get(x["annotator"]), "user_agent": x["user_agent"],
             "started_at": x["started_at"], "last_seen_at": x["last_seen_at"]} for x in r.data["sessions"]]
    r.inserted["sessions"] = r.insert(AppSession, rows, ["id"])
    r.sessions = r.lookup(AppSession.id, AppSession.id, [x["id"] for x in r.data["sessions"]])


def _impressions(r: _Replay) -> None:
    """Impressions and their slates (a slate's rows are written only with a newly inserted impression)."""
    rows, slates = [], {}
    for x in r.data["impressions"]:
        item_ids = _loads(x["item_ids"]) or []
        if x["user_id"] not in r.users or not item_ids or any(i not in r.items for i in item_ids):
            r.skipped["impressions"] += 1
            continue
        contributors = _loads(x["contributors"])
        slates[x["event_id"]] = (item_ids, contributors)
        rows.append({"event_id": x["event_id"], "user_id": x["user_id"], "session_id": r.sessions.get(x["session_id"]),
                     "model": x["model"], "model_b": x["model_b"], "tab": x["tab"], "query": x["query"],
                     "context": _loads(x["context"]), "created_at": x["created_at"], "n_items": len(item_ids),
                     "n_items_b": sum(c == x["model_b"] for c in contributors) if contributors else 0})
    new = {}
    for chunk in _chunks(rows):
        statement = r.statement(Impression, chunk, ["event_id"]).returning(Impression.event_id, Impression.id)
        new.update(dict(r.s.execute(statement).all()))
    r.inserted["impressions"] = len(new)
    slate_rows = [{"impression_id": pk, "position": i, "item_id": item,
                   "contributor": slates[ev][1][i] if slates[ev][1] else None}
                  for ev, pk in new.items() for i, item in enumerate(slates[ev][0])]
    for chunk in _chunks(slate_rows):
        r.s.execute(ImpressionItem.__table__.insert(), chunk)
    r.impressions = r.lookup(Impression.event_id, Impression.id, [x["event_id"] for x in r.data["impressions"]])


def _assets(r: _Replay) -> None:
    rows = []
    for x in r.data["assets"]:
        if x["item_id"] not in r.items or (x["user_id"] is not None and x["user_id"] not in r.users):
            r.skipped["assets"] += 1
            continue
        rows.append({c: x[c] for c in _ASSET_COLUMNS} | {"params": _loads(x["params"]) or {}})
    r.inserted["assets"] = r.insert(GeneratedAsset, rows, ["event_id"])
    r.assets = r.lookup(GeneratedAsset.event_id, GeneratedAsset.id, [x["event_id"] for x in r.data["assets"]])


def _model_versions(r: _Replay) -> None:
    """Each version as last seen; which one of each (name, kind) is served is derived (`_derive_promoted`); the
    watermarks are set once the feedback is in (`_feedback`)."""
    data = r.data["model_versions"]
    r.inserted["model_versions"] = r.insert(ModelVersion, [
        {c: x[c] for c in _VERSION_COLUMNS} | {"promoted": False, "watermark": None, "metrics": _loads(x["metrics"]) or {},
                                               "config": _loads(x["config"]) or {}} for x in data],
        ["name", "kind", "version"])
    if r.inserted["model_versions"]:
        _derive_promoted(r.s, {(x["name"], x["kind"]) for x in data})
    r.versions = {_version_key(k, n, v): pk for pk, k, n, v in r.s.execute(
        select(ModelVersion.id, ModelVersion.kind, ModelVersion.name, ModelVersion.version))}


def _eval_runs(r: _Replay) -> None:
    """Offline evaluation runs (no unique column: compared on model, dataset, split and time)."""
    existing = {(m, d, sp, c) for m, d, sp, c in r.s.execute(
        select(EvalRun.model, EvalRun.dataset, EvalRun.split, EvalRun.created_at))}
    runs = [x for x in r.data["eval_runs"] if (x["model"], x["dataset"], x["split"], x["created_at"]) not in existing]
    for x in runs:
        r.s.add(EvalRun(model=x["model"], dataset=x["dataset"], split=x["split"], metrics=_loads(x["metrics"]),
                        config=_loads(x["config"]) or {}, created_at=x["created_at"],
                        model_version_id=r.versions.get(x.get("model_version"))))
    r.inserted["eval_runs"] = len(runs)
    r.s.flush()


def _pairs(r: _Replay) -> None:
    """Pairs: the pair key is rebuilt from this database's ids, as `queue.create_pair` builds it."""
    rows, key_of_uid = [], {}
    for x in r.data["pairs"]:
        if x["kind"] == "slate":
            a, b = r.impressions.get(x["impression_a_event_id"]), r.impressions.get(x["impression_b_event_id"])
            sides = {"impression_a_id": a, "impression_b_id": b, "asset_a_id": None, "asset_b_id": None}
        else:
            a, b = r.assets.get(x["asset_a_event_id"]), r.assets.get(x["asset_b_event_id"])
            sides = {"asset_a_id": a, "asset_b_id": b, "impression_a_id": None, "impression_b_id": None}
        target = x["target_user_id"]
        if a is None or b is None or (target is not None and target not in r.users):
            r.skipped["pairs"] += 1
            continue
        low, high = sorted((a, b))
        key = f"{x['kind']}:{low}:{high}:{target or ''}"
        key_of_uid[x["_key"]] = key
        rows.append({"pair_key": key, "kind": x["kind"], **sides, "target_user_id": target, "slots_taken": 0,
                     "created_at": x["created_at"]})
    r.inserted["pairs"] = r.insert(PairTask, rows, ["pair_key"])
    by_key = r.lookup(PairTask.pair_key, PairTask.id, key_of_uid.values())
    r.pairs = {uid: by_key[key] for uid, key in key_of_uid.items() if key in by_key}


def _assignments(r: _Replay) -> None:
    rows = []
    for x in r.data["assignments"]:
        pair, annotator = r.pairs.get(x["pair_uid"]), r.annotators.get(x["annotator"])
        if pair is None or annotator is None:
            r.skipped["assignments"] += 1
            continue
        rows.append({"pair_id": pair, "annotator_id": annotator, "assigned_at": x["assigned_at"],
                     "expires_at": x["expires_at"], "completed_at": x["completed_at"], "holds_slot": x["holds_slot"]})
    r.inserted["assignments"] = r.insert(PairAssignment, rows, ["pair_id", "annotator_id"])
    r.assigned_pairs = {x["pair_id"] for x in rows}


def _labels(r: _Replay) -> None:
    """Labels in their original order (new ids keep it); the current one = the latest per (pair, annotator)."""
    rows, supersedes = [], {}
    for x in r.data["labels"]:
        pair, annotator = r.pairs.get(x["pair_uid"]), r.annotators.get(x["annotator"])
        if pair is None or annotator is None:
            r.skipped["labels"] += 1
            continue
        rows.append({"event_id": x["event_id"], "pair_id": pair, "annotator_id": annotator, "choice": x["choice"],
                     "time_spent_ms": x["time_spent_ms"], "guideline_version": x["guideline_version"],
                     "is_current": False, "created_at": x["created_at"]})
        if x["supersedes_event_id"]:
            supersedes[x["event_id"]] = x["supersedes_event_id"]
    new = set()
    for chunk in _chunks(rows):  # one statement per chunk keeps the order of ids within and across chunks
        statement = r.statement(PreferenceLabel, chunk, ["event_id"]).returning(PreferenceLabel.event_id)
        new.update(r.s.scalars(statement).all())
    r.inserted["labels"] = len(new)
    if new:
        ids = r.lookup(PreferenceLabel.event_id, PreferenceLabel.id, set(new) | set(supersedes.values()))
        for ev in new:
            if ev in supersedes and supersedes[ev] in ids:
                r.s.execute(update(PreferenceLabel).where(PreferenceLabel.id == ids[ev])
                            .values(supersedes_id=ids[supersedes[ev]]))
        _derive_labels(r.s, {(x["pair_id"], x["annotator_id"]) for x in rows if x["event_id"] in new})
    _count_slots(r.s, {x["pair_id"] for x in rows} | r.assigned_pairs)


def _feedback(r: _Replay) -> None:
    """Feedback events, then the watermarks of the model versions added: this store's id of the same event."""
    rows = []
    for x in r.data["feedback"]:
        imp = r.impressions.get(x["impression_event_id"]) if x["impression_event_id"] else None
        if x["user_id"] not in r.users or x["item_id"] not in r.items or (x["impression_event_id"] and imp is None):
            r.skipped["feedback"] += 1
            continue
        rows.append({"event_id": x["event_id"], "user_id": x["user_id"], "item_id": x["item_id"],
                     "impression_id": imp, "kind": x["kind"], "value": x["value"], "created_at": x["created_at"],
                     "model": x["model"], "position": x["position"]})
    r.inserted["feedback"] = r.insert(FeedbackEvent, rows, ["event_id"])
    marks = {x["watermark_event_id"]: x for x in r.data["model_versions"] if x.get("watermark_event_id")}
    if r.inserted["model_versions"] and marks:
        ids = r.lookup(FeedbackEvent.event_id, FeedbackEvent.id, marks)
        for event_id, x in marks.items():
            r.s.execute(update(ModelVersion).where(ModelVersion.name == x["name"], ModelVersion.kind == x["kind"],
                                                   ModelVersion.version == x["version"])
                        .values(watermark=ids.get(event_id)))


_STEPS = (_people, _sessions, _impressions, _assets, _model_versions, _eval_runs, _pairs, _assignments, _labels,
          _feedback)


def _dedupe(rows: list[dict], keep: str = "first") -> list[dict]:
    seen: dict[str, dict] = {}
    for row in rows:
        if keep == "last" or row["_key"] not in seen:
            seen[row["_key"]] = row
    return list(seen.values())


def _loads(value: str | None):
    return None if value is None else json.loads(value)


def _derive_promoted(s: Session, groups: set[tuple[str, str]]) -> None:
    """The served version of each (name, kind): the one promoted last (the latest `promoted_at` among versions
    whose decision is "promoted"), as `annotation.registry.promote` and `rollback` leave it."""
    m = ModelVersion
    for name, kind in groups:
        served = s.scalar(select(m.id).where(m.name == name, m.kind == kind, m.decision == "promoted",
                                             m.promoted_at.is_not(None))
                          .order_by(m.promoted_at.desc(), m.version.desc()).limit(1))
        s.execute(update(m).where(m.name == name, m.kind == kind).values(promoted=m.id == served if served else False))


def _derive_labels(s: Session, touched: set[tuple[int, int]]) -> None:
    """Recompute, for the (pair, annotator)s that got labels, which label is current and the assignment's state,
    as the store's record_preference / clear_preference leave them."""
    for pair_id, annotator_id in touched:
        labels = s.execute(select(PreferenceLabel.id, PreferenceLabel.choice, PreferenceLabel.created_at)
                           .where(PreferenceLabel.pair_id == pair_id, PreferenceLabel.annotator_id == annotator_id)
                           .order_by(PreferenceLabel.id)).all()
        last_id, choice, at = labels[-1]
        s.execute(update(PreferenceLabel).where(PreferenceLabel.pair_id == pair_id,
                                                PreferenceLabel.annotator_id == annotator_id)
                  .values(is_current=PreferenceLabel.id == last_id))
        if choice is None:  # cleared by an undo: handed back to them as an open lease
            state = {"completed_at": None, "holds_slot": True, "expires_at": at + dt.timedelta(seconds=LEASE_S)}
        else:
            state = {"completed_at": at, "holds_slot": choice != "skip"}
        found = s.execute(update(PairAssignment).where(PairAssignment.pair_id == pair_id,
                                                       PairAssignment.annotator_id == annotator_id)
                          .values(**state)).rowcount
        if not found:
            s.add(PairAssignment(pair_id=pair_id, annotator_id=annotator_id, assigned_at=at,
                                 expires_at=state.get("expires_at", at), **{k: v for k, v in state.items()
                                                                           if k != "expires_at"}))
            s.flush()


def _count_slots(s: Session, pair_ids: set[int]) -> None:
    """`slots_taken` of each pair = its assignments holding a slot (the store keeps this invariant)."""
    for pair_id in pair_ids:
        held = s.scalar(select(func.count()).select_from(PairAssignment)
                        .where(PairAssignment.pair_id == pair_id, PairAssignment.holds_slot.is_(True)))
        s.execute(update(PairTask).where(PairTask.id == pair_id).values(slots_taken=held))
