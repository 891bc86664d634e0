"""The durable event sink (annotation.sync): every table survives sync -> restore into an empty store, on SQLite
and PostgreSQL; replay is idempotent; a shard killed half-way is never read; a restarted syncer resumes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from annotation import queue, registry, restore, store, sync
from annotation.db import make_engine, make_session_factory
from annotation.errors import InvalidInputError
from annotation.models import (
    Annotator,
    AppSession,
    Base,
    EvalRun,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    Item,
    ModelVersion,
    PairAssignment,
    PairTask,
    PreferenceLabel,
    User,
)
from ann_helpers import ITEMS, cover, new_id
from pg_databases import pg_database

ROOT = Path(__file__).resolve().parents[2]
TABLES = ", ".join(table.name for table in Base.metadata.sorted_tables)


@pytest.fixture(scope="session")
def pg_target_url(pg_url: str):
    with pg_database(pg_url, "vitrine_sync_target", migrate=True) as url:
        yield url


@pytest.fixture
def target(request, db_url, tmp_path):
    """A second empty, migrated store on the same engine kind as `db_url` (the restarted app's)."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "restored.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_target_url")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        engine.dispose()
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _at(minutes: int) -> dt.datetime:
    return dt.datetime(2026, 11, 1, 12, 0) + dt.timedelta(minutes=minutes)


def populate(Session) -> dict:
    """A little of everything the app writes: people, sessions, plain and interleaved slates, feedback of every
    kind, covers and captions, asset and slate pairs, queue leases, labels changed and undone, an eval run."""
    out = {}
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
        store.ensure_user(s, "new-1", kind="new")
        alice = store.get_or_create_annotator(s, "alice")
        bob = store.get_or_create_annotator(s, "bob", role="admin")
        carol = store.get_or_create_annotator(s, "carol")
        out["annotators"] = (alice.id, bob.id, carol.id)
        session_id = new_id()
        store.start_session(s, session_id, user_id="196", user_agent="pytest")
        store.start_session(s, new_id(), annotator_id=alice.id)
        plain = store.record_impression(s, new_id(), "196", "ease", ["1", "2", "3"], context={"tab": "discover",
                                        "query": "space", "page": 2}, session_id=session_id, at=_at(1))
        mixed = store.record_impression(s, new_id(), "new-1", ("ease", "pop"), ["4", "5", "6", "7"],
                                        contributors=["ease", "pop", "pop", "ease"], at=_at(2))
        store.record_feedback(s, new_id(), "196", "2", "like", impression_id=plain.id, at=_at(3))
        store.record_feedback(s, new_id(), "new-1", "5", "click", impression_id=mixed.event_id, at=_at(4))
        store.record_feedback(s, new_id(), "196", "9", "rating", value=4, at=_at(5))
        store.record_feedback(s, new_id(), "196", "3", "dwell", impression_id=plain.id, value=1234.5, at=_at(6))
        store.record_feedback_batch(s, [{"event_id": new_id(), "user_id": "new-1", "item_id": "7", "kind": "dislike",
                                         "impression_id": mixed.id, "at": _at(7)}])
        assets = [store.record_asset(s, cover(item_id="1", user_id="196", path=f"covers/ab/{uuid.uuid4().hex}.jpg"))
                  for _ in range(4)]
        generic = store.record_asset(s, cover(item_id="1", personalized=False))
        caption_a = store.record_asset(s, dict(cover(item_id="2", user_id="196"), kind="caption", path=None,
                                               text="Because you liked space."))
        caption_b = store.record_asset(s, dict(cover(item_id="2", user_id="196"), kind="caption", path=None,
                                               text="A quiet drama.", generator="fallback", fallback=True))
        pairs = [queue.create_pair(s, assets[0].id, assets[1].id, target_user_id="196").id,
                 queue.create_pair(s, assets[2].id, generic.id, target_user_id="196").id,
                 queue.create_pair(s, caption_a.id, caption_b.id).id,
                 queue.create_pair(s, plain.id, mixed.id, kind="slate").id]
        out["pairs"] = pairs
        store.record_eval_run(s, "ease", "ml-100k", "random", {"ndcg@10": 0.33, "recall@10": 0.21},
                              config={"seed": 2020}, at=_at(8))
        add_versions(s)
    # the queue: alice labels A then changes to B, then undoes; bob labels and skips; carol holds an open lease
    with Session() as s, s.begin():
        first = queue.next_pair(s, alice.id, now=_at(10)).id
        queue.record_preference(s, new_id(), first, alice.id, "A", time_spent_ms=900, at=_at(11))
        queue.record_preference(s, new_id(), first, alice.id, "B", time_spent_ms=400, at=_at(12))
        second = queue.next_pair(s, alice.id, now=_at(13)).id
        queue.record_preference(s, new_id(), second, alice.id, "tie", at=_at(14))
        queue.undo_last_preference(s, new_id(), alice.id, at=_at(15))
        b1 = queue.next_pair(s, bob.id, now=_at(16)).id
        queue.record_preference(s, new_id(), b1, bob.id, "skip", at=_at(17))
        b2 = queue.next_pair(s, bob.id, now=_at(18)).id
        queue.record_preference(s, new_id(), b2, bob.id, "A", guideline_version="v2", at=_at(19))
        queue.record_preference(s, new_id(), (caption_a.id, caption_b.id), carol.id, "B", at=_at(20))
        out["carol_open"] = queue.next_pair(s, carol.id, now=_at(21)).id
        out["alice_undone"] = second
    return out


def add_versions(s) -> None:
    """The model registry: ease v1 and v2 promoted (v2 with an eval run), then rolled back to v1; a rejected
    preference model."""
    watermark = registry.latest_event_id(s)
    v1 = registry.register(s, "ease", "registry/recommender/ease/v1-0123456789abcdef.tar", at=_at(8))
    registry.decide(s, v1.id, "promoted", "initial version", at=_at(8))
    v2 = registry.register(s, "ease", "registry/recommender/ease/v2-0123456789abcdef.tar", watermark=watermark,
                           metrics={"candidate": {"ndcg@10": 0.4}}, config={"events": 5}, at=_at(9))
    registry.record_version_eval(s, v2.id, "ml-100k", "recent-holdout", {"ndcg@10": 0.4}, at=_at(9))
    registry.decide(s, v2.id, "promoted", "not worse", at=_at(9))
    reward = registry.register(s, "reward", "registry/preference/reward/v1-0123456789abcdef.npz", kind="preference",
                               at=_at(9))
    registry.decide(s, reward.id, "rejected", "worse than chance", at=_at(9))
    registry.rollback(s, "ease", at=_at(10))


def snapshot(Session) -> dict[str, list]:
    """Every table by natural keys (integer ids left out), sorted: equal snapshots are equal stores."""
    with Session() as s:
        sides = {}
        for p in s.scalars(select(PairTask)):
            if p.kind == "slate":
                sides[p.id] = (p.kind, p.impression_a.event_id, p.impression_b.event_id, p.target_user_id)
            else:
                sides[p.id] = (p.kind, p.asset_a.event_id, p.asset_b.event_id, p.target_user_id)
        names = dict(s.execute(select(Annotator.id, Annotator.name)).all())
        impressions = dict(s.execute(select(Impression.id, Impression.event_id)).all())
        labels = dict(s.execute(select(PreferenceLabel.id, PreferenceLabel.event_id)).all())
        feedback = dict(s.execute(select(FeedbackEvent.id, FeedbackEvent.event_id)).all())
        versions = {v.id: (v.kind, v.name, v.version) for v in s.scalars(select(ModelVersion))}
        snap = {
            "items": [(i.item_id, i.title, i.year, tuple(i.genres)) for i in s.scalars(select(Item))],
            "users": [(u.user_id, u.kind, u.created_at) for u in s.scalars(select(User))],
            "annotators": [(a.name, a.role, a.created_at) for a in s.scalars(select(Annotator))],
            "sessions": [(x.id, x.user_id, names.get(x.annotator_id), x.user_agent, x.started_at)
                         for x in s.scalars(select(AppSession))],
            "impressions": [(i.event_id, i.user_id, i.session_id, i.model, i.model_b, i.tab, i.query,
                             json.dumps(i.context, sort_keys=True), i.created_at, tuple(i.item_ids),
                             tuple(i.contributors or ()), i.n_items, i.n_items_b)
                            for i in s.scalars(select(Impression))],
            "feedback": [(f.event_id, f.user_id, f.item_id, impressions.get(f.impression_id), f.kind, f.value,
                          f.created_at, f.model, f.position) for f in s.scalars(select(FeedbackEvent))],
            "assets": [(a.event_id, a.kind, a.item_id, a.user_id, a.generator, a.fallback, a.prompt,
                        a.negative_prompt, a.seed, json.dumps(a.params, sort_keys=True), a.path, a.text,
                        a.content_hash, a.latency_ms, a.personalized, a.cache_hit, a.created_at)
                       for a in s.scalars(select(GeneratedAsset))],
            "pairs": [sides[p.id] + (p.slots_taken, p.created_at) for p in s.scalars(select(PairTask))],
            "assignments": [(sides[a.pair_id], names[a.annotator_id], a.completed_at, a.holds_slot,
                             a.expires_at if a.completed_at is None else None)
                            for a in s.scalars(select(PairAssignment))],
            "labels": [(x.event_id, sides[x.pair_id], names[x.annotator_id], x.choice, x.time_spent_ms,
                        x.guideline_version, x.is_current, labels.get(x.supersedes_id), x.created_at)
                       for x in s.scalars(select(PreferenceLabel))],
            "eval_runs": [(r.model, r.dataset, r.split, json.dumps(r.metrics, sort_keys=True),
                           json.dumps(r.config, sort_keys=True), r.created_at, versions.get(r.model_version_id))
                          for r in s.scalars(select(EvalRun))],
            "model_versions": [(v.kind, v.name, v.version, v.artifact, feedback.get(v.watermark), v.decision, v.reason,
                                v.promoted, v.promoted_at, v.created_at, json.dumps(v.metrics, sort_keys=True),
                                json.dumps(v.config, sort_keys=True)) for v in s.scalars(select(ModelVersion))],
        }
    return {k: sorted(v, key=repr) for k, v in snap.items()}


def test_every_table_round_trips_and_replay_twice_adds_nothing(engine, target, tmp_path):
    Session = make_session_factory(engine)
    made = populate(Session)
    sink = str(tmp_path / "sink")
    result = sync.sync_once(make_session_factory(engine, read_only=True), sink, sync.SyncState())
    assert result.shipped == {"items": 20, "users": 2, "annotators": 3, "sessions": 2, "impressions": 2,
                              "feedback": 5, "assets": 7, "pairs": 5, "assignments": 6, "labels": 7,
                              "eval_runs": 2, "model_versions": 3}
    before = snapshot(Session)
    with target() as s:
        assert restore.store_is_empty(s)
    first = restore.restore(target, sink)
    assert first.skipped == {} and first.inserted == result.shipped
    assert snapshot(target) == before  # every row and every derived state (current label, slots, leases)
    second = restore.restore(target, f"file://{sink}")
    assert set(second.inserted.values()) == {0} and snapshot(target) == before
    # the restored queue behaves as the original: alice's undone pair is handed back to her
    alice, expected = made["annotators"][0], _pair_key(Session, made["alice_undone"], target)
    with target() as s, s.begin():
        assert queue.next_pair(s, alice, now=_at(16)).pair_key == expected


def _pair_key(Session, pair_id, target) -> str:
    """The key the restored store gives the pair `pair_id` of the original store (ids are remapped)."""
    with Session() as s:
        p = s.get(PairTask, pair_id)
        events = (p.asset_a.event_id, p.asset_b.event_id)
    with target() as s:
        ids = [s.scalar(select(GeneratedAsset.id).where(GeneratedAsset.event_id == e)) for e in events]
        return s.scalar(select(PairTask.pair_key).where(PairTask.asset_a_id == ids[0], PairTask.asset_b_id == ids[1]))


def test_incremental_syncs_ship_each_row_once_and_a_new_process_resumes(engine, target, tmp_path):
    Session = make_session_factory(engine)
    sink = str(tmp_path / "sink")
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
    state = sync.SyncState()
    assert sync.sync_once(Session, sink, state).shipped == {"items": 20, "users": 1}
    assert sync.sync_once(Session, sink, state).shipped == {}  # nothing new: no shard
    with Session() as s, s.begin():
        store.ensure_user(s, "186")
        for i in range(3):
            store.record_feedback(s, new_id(), "186", str(i + 1), "like")
    assert sync.sync_once(Session, sink, state).shipped == {"users": 1, "feedback": 3}
    # a restarted process (new state) reads the sink's keys and ships only what the sink lacks
    with Session() as s, s.begin():
        store.record_feedback(s, new_id(), "196", "4", "click")
    fresh = sync.SyncState()
    assert sync.sync_once(Session, sink, fresh).shipped == {"feedback": 1}
    assert sync.sync_once(Session, sink, fresh).shipped == {}
    shards = sorted(p.name for p in (tmp_path / "sink" / "feedback").iterdir())
    assert len(shards) == 2 and all(n.endswith(".parquet") for n in shards)
    restore.restore(target, sink)
    assert snapshot(target) == snapshot(Session)


def test_restored_store_syncs_on_without_reshipping(engine, target, tmp_path):
    Session = make_session_factory(engine)
    populate(Session)
    sink = str(tmp_path / "sink")
    sync.sync_once(Session, sink, sync.SyncState())
    restore.restore(target, sink)
    state = sync.SyncState()  # the restarted app's syncer, on the restored store (other ids)
    assert sync.sync_once(target, sink, state).shipped == {}
    with target() as s, s.begin():
        store.record_feedback(s, new_id(), "196", "8", "like")
    assert sync.sync_once(target, sink, state).shipped == {"feedback": 1}


def test_model_versions_are_shipped_again_when_they_change_and_a_restore_serves_the_last_promoted(engine, target,
                                                                                                   tmp_path):
    """The registry's rows change after they are first shipped (promotion, demotion, rollback): each change is
    shipped, a restarted syncer ships only what changed, and the restored store serves the version served last."""
    Session = make_session_factory(engine)
    sink, state = str(tmp_path / "sink"), sync.SyncState()
    with Session() as s, s.begin():
        v1 = registry.register(s, "ease", "registry/recommender/ease/v1-aa.tar")
        registry.decide(s, v1.id, "promoted", "initial version")
    assert sync.sync_once(Session, sink, state).shipped == {"model_versions": 1}
    assert sync.sync_once(Session, sink, state).shipped == {}
    with Session() as s, s.begin():
        v2 = registry.register(s, "ease", "registry/recommender/ease/v2-bb.tar")
        registry.decide(s, v2.id, "promoted", "not worse")
    assert sync.sync_once(Session, sink, state).shipped == {"model_versions": 2}  # v2, and v1 demoted
    restored = restore.restore(target, sink)
    assert restored.inserted["model_versions"] == 2
    with target() as s:
        assert registry.promoted_version(s, "ease").version == 2
    with Session() as s, s.begin():
        registry.rollback(s, "ease")
    assert sync.sync_once(Session, sink, sync.SyncState()).shipped == {"model_versions": 2}  # a restarted syncer
    assert sync.sync_once(Session, sink, state).shipped == {"model_versions": 2}  # harmless: replay keeps the latest
    with target() as s, s.begin():  # the restore target is emptied (the registry has no deletes: by SQL)
        s.execute(ModelVersion.__table__.delete())
    restore.restore(target, sink)
    with target() as s:
        served = registry.promoted_version(s, "ease")
        assert served.version == 1
        rolled_back = [v for v in registry.list_versions(s, "ease") if v.version == 2]
        assert rolled_back[0].decision == "rejected" and rolled_back[0].reason.startswith("rolled back")
    assert snapshot(target)["model_versions"] == snapshot(Session)["model_versions"]
    assert set(restore.restore(target, sink).inserted.values()) == {0}
    # the restored store's own syncer has nothing to ship: what it holds is what the sink holds
    assert sync.sync_once(target, sink, sync.SyncState()).shipped == {}


def test_a_shard_killed_half_way_is_not_read(engine, target, tmp_path):
    """A syncer process is SIGKILLed after writing part of a shard (before the rename): the sink holds the
    partial file, and neither restore nor the next syncer's resume reads it as data."""
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
    sink = tmp_path / "sink"
    sync.sync_once(Session, str(sink), sync.SyncState())
    with Session() as s, s.begin():
        store.record_feedback(s, new_id(), "196", "1", "like")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from annotation import queue, restore, sync
        from annotation.db import make_engine, make_session_factory
        from fsspec.implementations.local import LocalFileSystem

        real_open = LocalFileSystem.open
        def dying_open(self, path, mode="rb", **kw):
            f = real_open(self, path, mode, **kw)
            if "w" in mode:
                real_write = f.write
                def write(data):
                    real_write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
                    os.kill(os.getpid(), signal.SIGKILL)
                f.write = write
            return f
        LocalFileSystem.open = dying_open
        sync.sync_once(make_session_factory(make_engine({engine.url.render_as_string(hide_password=False)!r})),
                       {str(sink)!r}, sync.SyncState())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    partial = [p for p in (sink / "feedback").iterdir()]
    assert len(partial) == 1 and not partial[0].name.endswith(".parquet") and partial[0].stat().st_size > 0
    # a damaged file under a shard's name (e.g. copied in by hand) is skipped too, with a warning
    (sink / "users" / "20990101T000000.000000Z-000001-deadbeef.parquet").write_bytes(b"PAR1 not really")
    result = restore.restore(target, str(sink))
    assert result.inserted["feedback"] == 0 and result.inserted["users"] == 1 and result.skipped == {}
    # the event was never acknowledged by a sync: the next syncer ships it
    assert sync.sync_once(Session, str(sink), sync.SyncState()).shipped == {"feedback": 1}
    assert restore.restore(target, str(sink)).inserted["feedback"] == 1


def test_rows_committed_out_of_id_order_are_shipped(engine, tmp_path):
    """PostgreSQL hands out ids at insert: a transaction holding id n can commit after n+1 was shipped."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: ids always commit in order")
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
    sink, state = str(tmp_path / "sink"), sync.SyncState()
    sync.sync_once(Session, sink, state)
    slow = Session()
    slow.begin()
    early = store.record_feedback(slow, new_id(), "196", "1", "like")  # id n, not committed yet
    with Session() as s, s.begin():
        late = store.record_feedback(s, new_id(), "196", "2", "like")  # id n+1, committed
    assert late.id > early.id
    assert sync.sync_once(Session, sink, state).shipped == {"feedback": 1}
    slow.commit()
    slow.close()
    assert sync.sync_once(Session, sink, state).shipped == {"feedback": 1}  # the straggler
    assert sync.sync_once(Session, sink, state).shipped == {}
    fs, root = sync.open_sink(sink)
    shipped = {r["event_id"] for r in sync._read_shards(fs, root, "feedback")}
    assert shipped == {early.event_id, late.event_id}


def test_an_fsspec_url_without_renames_works_and_bad_urls_are_refused(engine, target):
    Session = make_session_factory(engine)
    populate(Session)
    url = f"memory://vitrine-sync-{uuid.uuid4().hex[:8]}"
    assert sync.sync_once(Session, url, sync.SyncState()).shipped["labels"] == 7
    restore.restore(target, url)
    assert snapshot(target) == snapshot(Session)
    with pytest.raises(InvalidInputError, match="sink_url"):
        sync.open_sink("")
    with pytest.raises(InvalidInputError, match="sink_url"):
        sync.open_sink("nosuchprotocol-xyz://bucket/dir")


def test_gap_bookkeeping_expires_ids_that_never_commit():
    cursor = sync._Cursor()
    sync._advance(cursor, [1, 2, 5], now=0.0)
    assert cursor.high == 5 and set(cursor.gaps) == {3, 4}
    sync._advance(cursor, [4], now=10.0)
    assert set(cursor.gaps) == {3}
    sync._advance(cursor, [], now=10.0 + sync.GAP_TTL_S + 1)  # id 3 was consumed by a rolled-back insert
    assert cursor.gaps == {} and cursor.high == 5


def test_the_hub_sink_commits_each_sync_once_through_huggingface_hub(engine, target, monkeypatch):
    """hf://datasets/ORG/NAME through huggingface_hub's own client, against a local stand-in of the Hub's HTTP
    API (the Hub is unreachable here): the repo is created private at the first sync, each sync is one commit,
    and an empty store is rebuilt from it."""
    from hub_stand_in import HubStandIn

    Session = make_session_factory(engine)
    populate(Session)
    url = "hf://datasets/org/vitrine-events/sink"
    with HubStandIn() as hub:
        hub.use(monkeypatch)
        assert set(restore.restore(target, url).inserted.values()) == {0}  # no repo yet: an empty sink
        state = sync.SyncState()
        first = sync.sync_once(make_session_factory(engine, read_only=True), url, state)
        assert first.shipped["labels"] == 7 and len(first.shards) == len(first.shipped)
        commits = hub.commits["org/vitrine-events"]
        assert len(commits) == 1 and len(commits[0]["added"]) == len(first.shipped)  # one commit for the sync
        assert hub.visibility["org/vitrine-events"] == "private"
        assert all(path.startswith("sink/") and path.endswith(".parquet") for path in commits[0]["added"])
        assert sync.sync_once(Session, url, state).shipped == {} and len(commits) == 1  # nothing new: no commit
        restored = restore.restore(target, url)
        assert restored.inserted == first.shipped and restored.skipped == {}
        assert snapshot(target) == snapshot(Session)
        # a new process (a restarted Space) resumes from the repo's shards without re-shipping
        assert sync.sync_once(Session, url, sync.SyncState()).shipped == {} and len(commits) == 1


def test_a_hub_storage_bucket_sink_writes_one_object_per_shard(monkeypatch, tmp_path):
    """hf://buckets/ORG/NAME opens as huggingface_hub's HfFileSystem (2.4.0 addresses Storage Buckets), but a
    bucket takes no commits: each shard is one upload (`pipe_file`, which the client sends as a bucket file), like
    s3://. The local Hub stand-in speaks the repository API only (bucket uploads go through Xet), so the upload
    itself is recorded here rather than sent."""
    from huggingface_hub import HfFileSystem

    fs, root = sync.open_sink("hf://buckets/org/vitrine/events")
    assert isinstance(fs, HfFileSystem) and root == "buckets/org/vitrine/events"
    written: dict[str, bytes] = {}
    monkeypatch.setattr(fs, "pipe_file", lambda path, data, **kwargs: written.__setitem__(path, data))
    monkeypatch.setattr(fs._api, "create_commit", lambda *a, **k: pytest.fail("a bucket takes no commit"))
    names = sync._put_shards(fs, root, [("feedback/a.parquet", b"1"), ("labels/b.parquet", b"2")])
    assert names == [f"{root}/feedback/a.parquet", f"{root}/labels/b.parquet"]
    assert written == {f"{root}/feedback/a.parquet": b"1", f"{root}/labels/b.parquet": b"2"}
    # the blob store takes the same URL: its keys land under the bucket path
    from generation.blobs import BlobStore

    blobs = BlobStore("hf://buckets/org/vitrine/blobs", cache_dir=tmp_path / "cache")
    assert isinstance(blobs.fs, HfFileSystem) and blobs._remote("covers/ab/x.jpg") == "buckets/org/vitrine/blobs/covers/ab/x.jpg"
