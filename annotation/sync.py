"""The durable event sink: committed records appended to an fsspec URL as immutable Parquet shards, from which
`annotation.restore` rebuilds an empty store (how a Space, whose disk is ephemeral, keeps its labels).

    state = SyncState()
    sync_once(Session, "file:///mnt/sink", state)      # every few seconds (app/serving/sync_runner.py runs it)
    restore(Session, "file:///mnt/sink")               # at start, on an empty database (`annotation.restore`)

The URL is anything fsspec opens: a plain path or `file:///path`, `hf://datasets/ORG/NAME[/dir]`
(huggingface_hub's HfFileSystem: each sync is one commit, so sync every few minutes there),
`hf://buckets/ORG/NAME[/dir]` (a Hub Storage Bucket through the same HfFileSystem: one upload per shard, no
commits), `s3://bucket/dir` (when s3fs is installed), `memory://dir` (tests). Layout: one folder per table, one shard per table per sync
that had new rows, named so that their names sort in write order:

    <url>/feedback/20261129T153012.123456Z-000007-1a2b3c4d.parquet

What is shipped, and when: every row once, as it is when first seen committed, with its references written as
natural keys (event UUIDs, user and item ids, annotator names) instead of this database's integer ids:
items, users, annotators, app sessions, impressions (with their items), generated assets (metadata; the files
live in the blob store), pairs, pair assignments, preference labels (every history row), feedback events,
offline evaluation runs (with the model version they evaluated) and model registry versions (the artifacts live
in the blob store). Later changes to a shipped row are not shipped: the state they describe is derived on
replay instead (which label is current, which assignments are finished and hold a slot, each pair's
`slots_taken`), so nothing that matters is lost; an app session's `last_seen_at` and an item's later title
keep the value they had when shipped. Model versions are the exception: the registry is small and its rows
change (a decision, a promotion, a demotion, a rollback), so every sync reads all of them and ships again each
one whose state differs from what this process last shipped; replay keeps each version's latest snapshot (by
the time it was read) and derives which version is served (the one promoted last, by `promoted_at`, as
`registry.promote` and `registry.rollback` leave it), so a restored app serves the version it served before.

Which rows are new: big tables (impressions, feedback, assets, pairs, assignments, labels, eval runs) by their
integer id above a watermark. Ids are allocated when a row is inserted, not when it commits, so on PostgreSQL a
row with a smaller id can commit after a larger one was shipped: ids skipped over stay "open" for `GAP_TTL_S`
and are shipped when they turn up (an id skipped for good, e.g. by `ON CONFLICT DO NOTHING`, just expires).
Small tables (items, users, annotators, sessions) by their keys. The first sync of a `SyncState` reads the
keys already in the sink and ships whatever the database has that the sink lacks, so a restarted process
neither re-ships everything nor misses what was written while it was down.

Crash safety: a shard is written whole under a temporary name and renamed (local files), uploaded as one
object (object stores), or committed with the sync's other shards in one commit (the Hub), so a process killed
mid-write never leaves a partial `*.parquet`; a reader also skips any shard it cannot parse (logged) and every
name that is not `*.parquet`. Within one sync, rows are read children first (labels before pairs before
assets...) and shards written parents first, so every reference in a shard points at a row in the same or an
earlier shard.

Replay, which rebuilds a store from the shards, is `annotation.restore`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from annotation.errors import InvalidInputError
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
    utcnow,
)

__all__ = ["SyncState", "SyncResult", "sync_once", "open_sink", "TABLES", "GAP_TTL_S", "LEASE_S"]

log = logging.getLogger(__name__)

# Tables in write (parent-first) order; rows are read in the reverse order.
TABLES = ("items", "users", "annotators", "sessions", "impressions", "assets", "model_versions", "eval_runs", "pairs",
          "assignments", "labels", "feedback")
_BY_ID = {"impressions": Impression, "assets": GeneratedAsset, "eval_runs": EvalRun, "pairs": PairTask,
          "assignments": PairAssignment, "labels": PreferenceLabel, "feedback": FeedbackEvent}
GAP_TTL_S = 300.0  # an id skipped over this long ago is taken as never committed (a transaction lasts < 1 s)
MAX_GAPS = 100_000  # open ids kept per table at most (the oldest are dropped first)
LEASE_S = 1800  # the lease of a pair handed back by a replayed "undo" (the store's default)
_CHUNK = 500  # rows per INSERT / ids per IN (...)


# --------------------------------------------------------------------------------------------------------------
# the sink


def open_sink(url: str):
    """(fsspec filesystem, root path) for `url`; a plain path is a local directory (created)."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(f"sink_url must be a non-empty path or fsspec URL, got {url!r}")
    try:
        fs, root = fsspec.core.url_to_fs(url.strip())
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(f"sink_url {url!r} cannot be opened: {exc}") from exc
    root = root.rstrip("/") or "/"
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(root, exist_ok=True)
    return fs, root


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _shard_names(fs, root: str, table: str) -> list[str]:
    """Complete shards of `table`, in write order (temporary and foreign names are left out)."""
    folder = f"{root}/{table}"
    try:
        names = fs.ls(folder, detail=False, refresh=True)  # never a listing cached before another writer's shards
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        if base.endswith(".parquet") and not base.startswith((".", "_")):
            out.append(name)
    return sorted(out, key=lambda n: n.rsplit("/", 1)[-1])


def _read_shards(fs, root: str, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for name in _shard_names(fs, root, table):
        try:
            with fs.open(name, "rb") as f:
                data = f.read()
            rows.extend(pq.read_table(io.BytesIO(data), columns=columns).to_pylist())
        except Exception as exc:  # noqa: BLE001 - a damaged shard is reported and skipped, never half-read
            log.warning("sync: skipping unreadable shard %s (%s: %s)", name, type(exc).__name__, exc)
    return rows


def _shard(table: str, rows: list[dict[str, Any]], seq: int) -> tuple[str, bytes]:
    """(path under the sink root, Parquet bytes) of one new shard of `table`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{table}/{stamp}-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet", buf.getvalue()


def _is_hub_repo(fs, root: str) -> bool:
    """A Hub repository (a dataset repo: written by commits). A Storage Bucket (`buckets/...`, the same
    HfFileSystem) is an object store: written one object per shard, like s3://."""
    try:
        from huggingface_hub import HfFileSystem
    except ImportError:  # pragma: no cover - huggingface_hub is a requirement
        return False
    return isinstance(fs, HfFileSystem) and not root.startswith("buckets/")


def _put_shards(fs, root: str, shards: list[tuple[str, bytes]]) -> list[str]:
    """Write the shards; returns their full names. Each appears whole or not at all: a local file is written
    under a temporary name, synced and renamed; in a Hub repository the whole sync is one commit (the Hub limits
    commits per hour, and a commit is atomic); elsewhere (object stores, Hub Storage Buckets) each shard is one
    object."""
    names = [f"{root}/{path}" for path, _ in shards]
    if not shards:
        return names
    if _is_local(fs):
        import os

        for final, (_, data) in zip(names, shards):
            folder, base = final.rsplit("/", 1)
            fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.{base}.tmp"
            with fs.open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            fs.mv(tmp, final)  # a rename: the shard appears whole or not at all
    elif _is_hub_repo(fs, root):
        from huggingface_hub import CommitOperationAdd

        try:
            where = fs.resolve_path(root)
        except FileNotFoundError:  # the first sync to a new dataset repo: made private (labels name people)
            parts = root.split("/")
            if len(parts) < 3 or parts[0] != "datasets":
                raise InvalidInputError(f"sink_url: expected hf://datasets/ORG/NAME[/dir], got hf://{root}") from None
            fs._api.create_repo(f"{parts[1]}/{parts[2]}", repo_type="dataset", private=True, exist_ok=True)
            fs.invalidate_cache()
            where = fs.resolve_path(root)
        prefix = f"{where.path_in_repo}/" if where.path_in_repo else ""
        fs._api.create_commit(
            repo_id=where.repo_id, repo_type=where.repo_type, revision=where.revision,
            operations=[CommitOperationAdd(path_in_repo=prefix + path, path_or_fileobj=data) for path, data in shards],
            commit_message=f"vitrine sync: {len(shards)} shards")
        fs.invalidate_cache(root)
    else:
        for final, (_, data) in zip(names, shards):
            fs.pipe_file(final, data)  # one object: whole or not at all
    return names


# --------------------------------------------------------------------------------------------------------------
# reading rows out of the database, as plain dicts with natural keys


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _pair_uid(kind, a_event, b_event, imp_a_event, imp_b_event, target) -> str:
    return f"{kind}:{a_event or imp_a_event}:{b_event or imp_b_event}:{target or ''}"


def _read_items(s: Session, where=true()) -> list[dict]:
    return [{"_key": r.item_id, "item_id": r.item_id, "title": r.title, "year": r.year,
             "genres": _json(list(r.genres or [])), "synced_at": r.synced_at}
            for r in s.connection().execute(select(Item.item_id, Item.title, Item.year, Item.genres, Item.synced_at).where(where))]


def _read_users(s: Session, where=true()) -> list[dict]:
    return [{"_key": r.user_id, "user_id": r.user_id, "kind": r.kind, "created_at": r.created_at}
            for r in s.connection().execute(select(User.user_id, User.kind, User.created_at).where(where))]


def _read_annotators(s: Session, where=true()) -> list[dict]:
    # with the sha256 of the annotator's secret token (if they have one yet), so a rebuilt store still knows it
    return [{"_key": r.name, "name": r.name, "role": r.role, "created_at": r.created_at, "token_hash": r.token_hash}
            for r in s.connection().execute(select(Annotator.name, Annotator.role, Annotator.created_at,
                                                   Annotator.token_hash).where(where))]


def _read_sessions(s: Session, where=true()) -> list[dict]:
    rows = s.connection().execute(select(AppSession.id, AppSession.user_id, Annotator.name, AppSession.user_agent,
                            AppSession.started_at, AppSession.last_seen_at)
                     .outerjoin(Annotator, Annotator.id == AppSession.annotator_id).where(where))
    return [{"_key": r[0], "id": r[0], "user_id": r[1], "annotator": r[2], "user_agent": r[3], "started_at": r[4],
             "last_seen_at": r[5]} for r in rows]


def _read_impressions(s: Session, where) -> list[dict]:
    rows = s.connection().execute(select(Impression.id, Impression.event_id, Impression.user_id, Impression.session_id,
                            Impression.model, Impression.model_b, Impression.tab, Impression.query,
                            Impression.context, Impression.created_at).where(where).order_by(Impression.id)).all()
    slates: dict[int, list] = {}
    ids = [r.id for r in rows]
    for chunk in _chunks(ids):
        for imp, item, contributor in s.connection().execute(
            select(ImpressionItem.impression_id, ImpressionItem.item_id, ImpressionItem.contributor)
            .where(ImpressionItem.impression_id.in_(chunk)).order_by(ImpressionItem.impression_id,
                                                                     ImpressionItem.position)):
            slates.setdefault(imp, []).append((item, contributor))
    out = []
    for r in rows:
        slate = slates.get(r.id, [])
        out.append({"_id": r.id, "_key": r.event_id, "event_id": r.event_id, "user_id": r.user_id,
                    "session_id": r.session_id, "model": r.model, "model_b": r.model_b, "tab": r.tab,
                    "query": r.query, "context": _json(r.context), "created_at": r.created_at,
                    "item_ids": _json([i for i, _ in slate]),
                    "contributors": _json([c for _, c in slate]) if r.model_b is not None else None})
    return out


_ASSET_COLUMNS = ("event_id", "kind", "item_id", "user_id", "generator", "fallback", "prompt", "negative_prompt",
                  "seed", "params", "path", "text", "content_hash", "latency_ms", "personalized", "cache_hit",
                  "created_at")


def _read_assets(s: Session, where) -> list[dict]:
    cols = [GeneratedAsset.id] + [getattr(GeneratedAsset, c) for c in _ASSET_COLUMNS]
    out = []
    for r in s.connection().execute(select(*cols).where(where).order_by(GeneratedAsset.id)):
        row = dict(zip(("_id",) + _ASSET_COLUMNS, r))
        row["params"] = _json(row["params"] or {})
        row["_key"] = row["event_id"]
        out.append(row)
    return out


def _version_key(kind: str, name: str, version: int) -> str:
    return f"{kind}|{name}|{version}"


def _read_eval_runs(s: Session, where) -> list[dict]:
    out = []
    m = ModelVersion
    for r in s.connection().execute(select(EvalRun.id, EvalRun.model, EvalRun.dataset, EvalRun.split, EvalRun.metrics,
                                           EvalRun.config, EvalRun.created_at, m.kind, m.name, m.version)
                                    .outerjoin(m, m.id == EvalRun.model_version_id).where(where).order_by(EvalRun.id)):
        out.append({"_id": r.id, "_key": f"{r.model}|{r.dataset}|{r.split}|{r.created_at.isoformat()}",
                    "model": r.model, "dataset": r.dataset, "split": r.split, "metrics": _json(r.metrics),
                    "config": _json(r.config or {}), "created_at": r.created_at,
                    "model_version": None if r.version is None else _version_key(r.kind, r.name, r.version)})
    return out


_VERSION_COLUMNS = ("name", "kind", "version", "artifact", "watermark", "decision", "reason", "promoted",
                    "promoted_at", "created_at")


def _read_model_versions(s: Session, where=true()) -> list[dict]:
    """Every model version as it is now, with `_seen_at` (when it was read: the latest snapshot of a row wins on
    replay) and `_state` (a fingerprint of its columns: a changed row is shipped again)."""
    seen_at = utcnow()
    cols = [getattr(ModelVersion, c) for c in _VERSION_COLUMNS] + [FeedbackEvent.event_id, ModelVersion.metrics,
                                                                    ModelVersion.config]
    out = []
    for r in s.connection().execute(select(*cols).outerjoin(FeedbackEvent, FeedbackEvent.id == ModelVersion.watermark)
                                    .where(where).order_by(ModelVersion.id)):
        row = dict(zip(_VERSION_COLUMNS, r[:len(_VERSION_COLUMNS)]))
        row["watermark_event_id"] = r[-3]  # the watermark by natural key: a restored store numbers events anew
        row["metrics"], row["config"] = _json(r[-2] or {}), _json(r[-1] or {})
        row["promoted"] = bool(row["promoted"])
        row["_state"] = json.dumps({k: v for k, v in row.items() if k != "watermark"}, sort_keys=True, default=str)
        row["_key"] = _version_key(row["kind"], row["name"], row["version"])
        row["_seen_at"] = seen_at
        out.append(row)
    return out


def _pair_select():
    from sqlalchemy.orm import aliased

    a, b = aliased(GeneratedAsset), aliased(GeneratedAsset)
    ia, ib = aliased(Impression), aliased(Impression)
    return (select(PairTask.id, PairTask.kind, a.event_id, b.event_id, ia.event_id, ib.event_id,
                   PairTask.target_user_id, PairTask.created_at)
            .outerjoin(a, a.id == PairTask.asset_a_id).outerjoin(b, b.id == PairTask.asset_b_id)
            .outerjoin(ia, ia.id == PairTask.impression_a_id).outerjoin(ib, ib.id == PairTask.impression_b_id))


def _pair_uids(s: Session, pair_ids: Iterable[int]) -> dict[int, str]:
    out = {}
    for chunk in _chunks(sorted(set(pair_ids))):
        for r in s.connection().execute(_pair_select().where(PairTask.id.in_(chunk))):
            out[r[0]] = _pair_uid(*r[1:7])
    return out


def _read_pairs(s: Session, where) -> list[dict]:
    out = []
    for r in s.connection().execute(_pair_select().where(where).order_by(PairTask.id)):
        out.append({"_id": r[0], "_key": _pair_uid(*r[1:7]), "kind": r[1], "asset_a_event_id": r[2],
                    "asset_b_event_id": r[3], "impression_a_event_id": r[4], "impression_b_event_id": r[5],
                    "target_user_id": r[6], "created_at": r[7]})
    return out


def _read_assignments(s: Session, where) -> list[dict]:
    rows = s.connection().execute(select(PairAssignment.id, PairAssignment.pair_id, Annotator.name, PairAssignment.assigned_at,
                            PairAssignment.expires_at, PairAssignment.completed_at, PairAssignment.holds_slot)
                     .join(Annotator, Annotator.id == PairAssignment.annotator_id)
                     .where(where).order_by(PairAssignment.id)).all()
    uids = _pair_uids(s, (r[1] for r in rows))
    return [{"_id": r[0], "_key": f"{uids[r[1]]}|{r[2]}", "pair_uid": uids[r[1]], "annotator": r[2],
             "assigned_at": r[3], "expires_at": r[4], "completed_at": r[5], "holds_slot": bool(r[6])} for r in rows]


def _read_labels(s: Session, where) -> list[dict]:
    from sqlalchemy.orm import aliased

    old = aliased(PreferenceLabel)
    rows = s.connection().execute(select(PreferenceLabel.id, PreferenceLabel.event_id, PreferenceLabel.pair_id, Annotator.name,
                            PreferenceLabel.choice, PreferenceLabel.time_spent_ms, PreferenceLabel.guideline_version,
                            old.event_id, PreferenceLabel.created_at)
                     .join(Annotator, Annotator.id == PreferenceLabel.annotator_id)
                     .outerjoin(old, old.id == PreferenceLabel.supersedes_id)
                     .where(where).order_by(PreferenceLabel.id)).all()
    uids = _pair_uids(s, (r[2] for r in rows))
    return [{"_id": r[0], "_key": r[1], "event_id": r[1], "pair_uid": uids[r[2]], "annotator": r[3], "choice": r[4],
             "time_spent_ms": r[5], "guideline_version": r[6], "supersedes_event_id": r[7], "created_at": r[8]}
            for r in rows]


def _read_feedback(s: Session, where) -> list[dict]:
    rows = s.connection().execute(select(FeedbackEvent.id, FeedbackEvent.event_id, FeedbackEvent.user_id, FeedbackEvent.item_id,
                            Impression.event_id, FeedbackEvent.kind, FeedbackEvent.value, FeedbackEvent.created_at,
                            FeedbackEvent.model, FeedbackEvent.position)
                     .outerjoin(Impression, Impression.id == FeedbackEvent.impression_id)
                     .where(where).order_by(FeedbackEvent.id))
    return [{"_id": r[0], "_key": r[1], "event_id": r[1], "user_id": r[2], "item_id": r[3],
             "impression_event_id": r[4], "kind": r[5], "value": r[6], "created_at": r[7], "model": r[8],
             "position": r[9]} for r in rows]


_KEYED_READERS: dict[str, Callable[..., list[dict]]] = {
    "items": _read_items, "users": _read_users, "annotators": _read_annotators, "sessions": _read_sessions,
}
_KEY_COLUMNS = {"items": Item.item_id, "users": User.user_id, "annotators": Annotator.name, "sessions": AppSession.id}
_ID_READERS: dict[str, Callable[[Session, Any], list[dict]]] = {
    "impressions": _read_impressions, "assets": _read_assets, "eval_runs": _read_eval_runs, "pairs": _read_pairs,
    "assignments": _read_assignments, "labels": _read_labels, "feedback": _read_feedback,
}


def _chunks(values, size: int = _CHUNK):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


# --------------------------------------------------------------------------------------------------------------
# sync


@dataclass
class _Cursor:
    high: int = 0  # every id <= high was shipped, except the open gaps
    gaps: dict[int, float] = field(default_factory=dict)  # id skipped over -> monotonic time it was first missed


@dataclass
class SyncState:
    """What one process has shipped so far. Start with `SyncState()`; the first sync resumes from the sink."""

    cursors: dict[str, _Cursor] = field(default_factory=lambda: {t: _Cursor() for t in _BY_ID})
    keys: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in _KEYED_READERS})
    versions: dict[str, str] = field(default_factory=dict)  # model version key -> the state last shipped
    resumed: bool = False  # the sink's keys were read (the first sync does it)
    seq: int = 0  # shards written by this process (part of their names)


@dataclass
class SyncResult:
    started_at: dt.datetime  # naive UTC; every row committed before this is in the sink
    shipped: dict[str, int]  # rows shipped per table (tables with none are left out)
    shards: list[str]
    seconds: float


def _resume(fs, root: str, session_factory, state: SyncState) -> dict[str, list[dict]]:
    """First sync of a process: the rows the database has and the sink lacks, and cursors past all of them."""
    pending: dict[str, list[dict]] = {}
    sink_keys = {table: {r["_key"] for r in _read_shards(fs, root, table, ["_key"])} for table in TABLES
                 if table != "model_versions"}
    shipped_versions = _latest_snapshots(_read_shards(fs, root, "model_versions", ["_key", "_state", "_seen_at"]))
    state.versions = {r["_key"]: r["_state"] for r in shipped_versions}
    with session_factory() as s:
        for table in reversed(TABLES):  # children first (see the module docstring)
            if table == "model_versions":
                pending[table] = _changed_versions(s, state)
                continue
            if table in _BY_ID:
                model = _BY_ID[table]
                rows = _ID_READERS[table](s, model.id > 0)
                high = max((r["_id"] for r in rows), default=0)
                seen = {r["_id"] for r in rows}
                # ids just below the top may belong to transactions still in flight (PostgreSQL): keep them open
                gaps = {pk: time.monotonic() for pk in range(max(1, high - 1000), high) if pk not in seen}
                state.cursors[table] = _Cursor(high=high, gaps=gaps)
            else:
                rows = _KEYED_READERS[table](s)
                state.keys[table] = set(sink_keys[table])
            pending[table] = [r for r in rows if r["_key"] not in sink_keys[table]]
    state.resumed = True
    return pending


def _new_rows(session_factory, state: SyncState, now: float) -> dict[str, list[dict]]:
    pending: dict[str, list[dict]] = {}
    with session_factory() as s:
        for table in reversed(TABLES):
            if table == "model_versions":
                pending[table] = _changed_versions(s, state)
            elif table in _BY_ID:
                cursor = state.cursors[table]
                low = min(cursor.gaps, default=cursor.high + 1) - 1
                rows = _ID_READERS[table](s, _BY_ID[table].id > low)
                pending[table] = [r for r in rows if r["_id"] > cursor.high or r["_id"] in cursor.gaps]
            else:  # keys only (cheap), then the full rows of the new ones
                column = _KEY_COLUMNS[table]
                new = [k for k in s.connection().execute(select(column)).scalars() if k not in state.keys[table]]
                pending[table] = [row for chunk in _chunks(new)
                                  for row in _KEYED_READERS[table](s, column.in_(chunk))]
    return pending


def _changed_versions(s: Session, state: SyncState) -> list[dict]:
    """Model versions that are new or changed (decided, promoted, demoted, rolled back) since last shipped:
    the registry is small, so every row is read each time."""
    return [r for r in _read_model_versions(s) if state.versions.get(r["_key"]) != r["_state"]]


def _latest_snapshots(rows: list[dict]) -> list[dict]:
    """The latest snapshot (by `_seen_at`, then by shard order) of each model version in `rows`."""
    latest: dict[str, dict] = {}
    for row in rows:
        held = latest.get(row["_key"])
        if held is None or row["_seen_at"] >= held["_seen_at"]:
            latest[row["_key"]] = row
    return list(latest.values())


def _advance(cursor: _Cursor, shipped_ids: list[int], now: float) -> None:
    for pk in shipped_ids:
        cursor.gaps.pop(pk, None)
    top = max(shipped_ids, default=cursor.high)
    if top > cursor.high:
        seen = set(shipped_ids)
        for pk in range(cursor.high + 1, top):
            if pk not in seen:
                cursor.gaps[pk] = now
        cursor.high = top
    for pk in [pk for pk, since in cursor.gaps.items() if now - since > GAP_TTL_S]:
        del cursor.gaps[pk]
    if len(cursor.gaps) > MAX_GAPS:
        for pk in sorted(cursor.gaps, key=cursor.gaps.get)[: len(cursor.gaps) - MAX_GAPS]:
            del cursor.gaps[pk]


def sync_once(session_factory, sink_url: str, state: SyncState) -> SyncResult:
    """Append every committed row not yet shipped to the sink at `sink_url`; returns what was shipped.

    `session_factory` may be read-only (it only reads). Raises whatever the sink or the database raises (the
    caller logs and retries: `app.serving.sync_runner`); `state` advances only past shards that were written, so a
    failed sync is redone whole by the next one (replay drops any duplicate).
    """
    started, clock = utcnow(), time.perf_counter()
    fs, root = open_sink(sink_url)
    now = time.monotonic()
    pending = _resume(fs, root, session_factory, state) if not state.resumed else _new_rows(session_factory, state, now)
    shipped: dict[str, int] = {}
    shards: list[tuple[str, bytes]] = []
    for table in TABLES:  # parents first: shard names sort in this order too (the sequence number)
        rows = pending.get(table) or []
        if rows:
            state.seq += 1
            shards.append(_shard(table, [{k: v for k, v in r.items() if k != "_id"} for r in rows], state.seq))
            shipped[table] = len(rows)
    names = _put_shards(fs, root, shards)
    for table in TABLES:  # only once every shard is written: a failed sync is redone whole
        rows = pending.get(table) or []
        if table == "model_versions":
            state.versions.update((r["_key"], r["_state"]) for r in rows)
        elif table in _BY_ID:
            _advance(state.cursors[table], [r["_id"] for r in rows], now)
        else:
            state.keys[table].update(r["_key"] for r in rows)
    return SyncResult(started_at=started, shipped=shipped, shards=names, seconds=time.perf_counter() - clock)
