"""Two app replicas on one PostgreSQL database and one blob store (issue 13, item 4): a slate shown on one is
liked on the other, label pairs made on one are labelled on the other with their pictures, the overlap holds
across both, and a retrain promoted on one is served by the other within its poll interval. The replicas share
nothing else: the blob store is a remote URL (memory://, as s3:// or hf:// would be), each has its own data
directory and cache. A third replica on an empty database restored from the event sink serves the promoted
version again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotation.models import FeedbackEvent, PairTask
from app.web.api import ApiHandlers
from pg_databases import pg_database


@pytest.fixture(scope="module")
def replicas(pg_url, tmp_path_factory):
    from vitrine_app_fixtures import make_services

    with pg_database(pg_url, "vitrine_replicas") as url:
        root = tmp_path_factory.mktemp("replicas")
        shared = f"memory://vitrine-replicas-{uuid.uuid4().hex[:8]}"  # the blob store both use: a remote URL
        one = make_services(root / "one", database_url=url, blob_url=shared, model_poll_s=0.2)
        two = make_services(root / "two", database_url=url, blob_url=shared, model_poll_s=0.2)
        yield one, two
        one.close()
        two.close()


def test_a_slate_shown_on_one_replica_is_liked_on_the_other(replicas):
    one, two = replicas
    slate = ApiHandlers(one).recommend("5", "ease", 3, True)
    item = slate["items"][0]["item_id"]
    done = ApiHandlers(two).feedback("5", item, "like", slate["impression_id"])
    with one.events.ReadSession() as s:
        row = s.get(FeedbackEvent, done["feedback_id"])
        assert (row.user_id, row.item_id, row.impression_id) == ("5", item, slate["impression_id"])
    assert item in two.events.visitor("5").liked and item in one.events.visitor("5").liked


def test_pairs_made_on_one_are_labelled_on_the_other_with_their_pictures(replicas):
    one, two = replicas
    assert one.labeling.make_pairs(2, seed=7) == 4
    api_two, api_one = ApiHandlers(two), ApiHandlers(one)
    seen_cover, tokens = False, {}
    for _ in range(12):
        pair = api_two.next_pair("replica-annotator", token=tokens.get("replica-annotator", ""))
        tokens.setdefault("replica-annotator", pair["token"])
        if not pair["pair_id"]:
            break
        if pair["kind"] == "cover":
            for side in ("a", "b"):
                assert pair[side]["cover_key"] and not Path(pair[side]["cover_key"]).is_absolute()
                assert pair[side]["cover_url"] == pair[side]["cover_key"]  # served by key (app.web.routes.cover_route)
                assert two.assets.cover_file(pair[side]["cover_key"]).is_file()  # fetched from the shared store
            seen_cover = True
        api_two.label("replica-annotator", pair["pair_id"], "A", token=tokens["replica-annotator"])
    assert seen_cover
    # the overlap (2) holds across replicas: two more annotators, one per replica, then nobody else
    for api, name in ((api_one, "first"), (api_two, "second"), (api_one, "third")):
        while (pair := api.next_pair(name, token=tokens.get(name, "")))["pair_id"]:
            tokens.setdefault(name, pair["token"])  # a name's first call claims it (either replica knows it then)
            api.label(name, pair["pair_id"], "B", token=tokens[name])
    with one.events.ReadSession() as s:
        assert s.scalar(select(func.max(PairTask.slots_taken))) <= one.settings.label_overlap


def test_a_retrain_promoted_on_one_is_served_by_the_other_within_the_poll(replicas):
    one, two = replicas
    one.retrain("ease")
    served = one.watchers["ease"].version_id
    assert served is not None
    deadline = time.monotonic() + 10  # the poll interval is 0.2 s

    def serving() -> bool:  # the watcher has the version and the upkeep thread has swapped it in (two steps)
        return two.watchers["ease"].version_id == served and two.ranking.model("ease") is two.watchers["ease"].model

    while not serving() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert two.watchers["ease"].version_id == served
    assert two.ranking.model("ease") is two.watchers["ease"].model
    assert two.watchers["ease"].version == one.watchers["ease"].version  # loaded from the shared blob store
    assert (two.settings.data_dir / "model-cache").is_dir() and not (two.settings.data_dir / "registry").exists()


def test_an_empty_store_restored_from_the_sink_serves_the_promoted_version_again(replicas, pg_url, tmp_path):
    """The database is lost: a new one is rebuilt from the event sink, and the replica started on it serves the
    version promoted before (its row came back with the sink, its artifact is in the shared blob store)."""
    from annotation import registry, restore, sync
    from annotation.db import make_engine, make_session_factory
    from vitrine_app_fixtures import make_services

    one, two = replicas
    sink = str(tmp_path / "sink")  # the durable event sink
    one.retrain("ease")
    one.retrain("ease")  # a second candidate: promoted or rejected, the served version is what comes back
    sync.sync_once(one.events.ReadSession, sink, sync.SyncState())
    with one.events.ReadSession() as s:
        served = registry.promoted_version(s, "ease")
        versions = len(registry.list_versions(s, "ease"))
        served_version, served_artifact = served.version, served.artifact
    three = None
    with pg_database(pg_url, "vitrine_restored", migrate=True) as url:
        try:
            engine = make_engine(url)
            restored = restore.restore(make_session_factory(engine), sink)
            engine.dispose()
            assert restored.inserted["model_versions"] == versions
            three = make_services(tmp_path / "three", database_url=url, blob_url=one.settings.blob_url)
            watcher = three.watchers["ease"]
            assert (watcher.version, three.ranking.model("ease")) == (served_version, watcher.model)
            with three.events.ReadSession() as s:
                assert registry.promoted_version(s, "ease").artifact == served_artifact
            mine, theirs = three.ranking.model("ease"), one.ranking.model("ease")
            assert mine.recommend("5", 5)[0] == theirs.recommend("5", 5)[0]
        finally:
            if three is not None:
                three.close()
