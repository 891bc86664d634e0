"""Issue 14, the asset path: a byte quota on stored assets (oldest unlabelled first), Create variants kept only
once picked or labelled, and an API that returns cover keys and URLs instead of server paths."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest
from sqlalchemy import func, select

from annotation.models import GeneratedAsset, PairTask, PreferenceLabel
from app.web import create_tab, discover_tab, status_tab
from app.web.api import ApiHandlers
from app.settings import load_settings
from app.web.state import Visitor


def _held(svc) -> int:
    """Bytes of generated files in the blob store (what the quota bounds)."""
    return sum(a.size for a in svc.assets.covers.store.stored().values())


def _count(svc, model, *where) -> int:
    with svc.events.ReadSession() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


COVER = GeneratedAsset.kind == "cover"


def _paired_cover_paths(svc) -> list[str]:
    with svc.events.ReadSession() as s:
        ids = {i for row in s.execute(select(PairTask.asset_a_id, PairTask.asset_b_id)) for i in row if i}
        return [p for p in s.scalars(select(GeneratedAsset.path).where(GeneratedAsset.id.in_(ids),
                                                                      GeneratedAsset.kind == "cover"))]


def _blob_files(svc) -> set[str]:
    root = svc.assets.covers.store.root
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            and p.relative_to(root).parts[0] in ("covers", "provenance")}


# ------------------------------------------------------------------------------------------------------------
# the quota
# ------------------------------------------------------------------------------------------------------------
def test_the_quota_setting():
    assert load_settings({}).asset_quota_bytes == 2048 << 20
    assert load_settings({"VITRINE_ASSET_QUOTA_MB": "0.5"}).asset_quota_bytes == 512 << 10
    assert load_settings({"VITRINE_ASSET_QUOTA_MB": "0"}).asset_quota_bytes is None
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(ValueError, match="VITRINE_ASSET_QUOTA_MB"):
            load_settings({"VITRINE_ASSET_QUOTA_MB": bad})


def test_a_tiny_quota_evicts_the_oldest_unlabelled_covers_and_the_next_slate_makes_them_again(services_factory):
    # best_of_n=1: slates queue no label pairs of their own, so their covers are evictable
    svc = services_factory(asset_quota_mb=1.0, best_of_n=1)
    quota = svc.assets.quota.quota_bytes
    svc.assets.quota.every_s = 0.0
    # training data first (the oldest rows): a Create pick and an admin label pair
    visitor, _ = discover_tab.select_user(svc, Visitor(), "2")
    visitor, *_ = create_tab.create_variants(svc, visitor, "6", 4)
    visitor, _ = create_tab.pick_variant(svc, visitor, 1)
    assert svc.labeling.make_pairs(1, seed=3) == 2
    labelled = _paired_cover_paths(svc)
    assert len(labelled) >= 6
    # many slates, made by the background worker: several times the quota
    ease = svc.ranking.parse("ease")
    pages = {str(u): svc.slates.page(svc.events.visitor(str(u)), ease, 4, seed=1, wait=True) for u in range(1, 17)}
    made = _count(svc, GeneratedAsset)
    # the worker checks the quota once it has stored its last batch
    deadline = time.monotonic() + 20
    while _held(svc) > quota and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _held(svc) <= quota and svc.assets.quota.evicted > 0
    assert _count(svc, GeneratedAsset) == made  # rows stay: the provenance the dashboard and the sink read
    assert all(svc.assets.file(p) for p in labelled)  # training data is never evicted
    assert f"{svc.assets.quota.evicted} unlabelled assets evicted" in status_tab.status_html(svc)
    # the first slates' covers were the oldest unlabelled ones (users of one genre share them): gone, and not
    # shown as a broken picture
    user, first = next((u, page) for u, page in pages.items()
                       if any(svc.assets.file(c["path"]) is None for c in page.covers.values()))
    gone = [i for i in first.item_ids if svc.assets.file(first.covers[i]["path"]) is None]
    assert int(user) < 8
    visitor, _ = discover_tab.select_user(svc, Visitor(), user)
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease", None)
    shown = {i: svc.assets.file(c["key"]) for i, c in visitor.covers.items()}
    assert all(shown.values())  # every cover shown is there: none points at an evicted file
    assert set(gone) <= set(visitor.pending)  # queued again ...
    list(discover_tab.fill_assets(svc, visitor, poll_s=0.05, max_s=20))
    assert not visitor.pending
    for item in gone:  # ... and made again: the same key, the same file
        assert svc.assets.file(visitor.covers[item]["key"])
        assert Path(visitor.covers[item]["key"]).name == Path(first.covers[item]["path"]).name


def test_the_quota_never_evicts_a_file_whose_row_is_on_its_way(services_factory):
    svc = services_factory(asset_quota_mb=0.0001, best_of_n=1)  # ~100 bytes: nothing fits
    info = svc.catalog.item_info("3")
    svc.assets.covers.generate(info, None, n=1, seed=77)  # stored, not recorded yet
    svc.assets.quota.enforce()
    assert len(svc.assets.covers.store.stored()) == 1


def test_a_remote_blob_store_is_bounded_in_the_local_cache(tmp_path):
    from generation.assets import AssetStore
    from generation.blobs import BlobStore

    blobs = BlobStore(f"memory://quota-{os.getpid()}-{time.time_ns()}", cache_dir=tmp_path / "cache")
    store = AssetStore(blobs)
    blobs.put("covers/ab/" + "ab" * 32 + ".jpg", b"\xff\xd8" + b"x" * 100)
    blobs.put("provenance/covers/ab/" + "ab" * 32 + ".json", b"{}")
    held = store.stored()
    assert list(held) == ["ab" * 32] and held["ab" * 32].size == 104
    assert store.evict(held["ab" * 32]) == 104
    assert store.stored() == {}  # the cache is empty ...
    assert blobs.exists("covers/ab/" + "ab" * 32 + ".jpg")  # ... the remote object stays, fetched on the next read
    assert blobs.local_path("covers/ab/" + "ab" * 32 + ".jpg").read_bytes()[:2] == b"\xff\xd8"


# ------------------------------------------------------------------------------------------------------------
# Create variants: on trial until picked or labelled
# ------------------------------------------------------------------------------------------------------------
def test_arbitrary_seed_variants_from_the_api_are_not_stored(services_factory):
    svc = services_factory(auto_pairs_max=0)  # the label queue takes no pairs: nothing references a variant
    svc.assets.variants.staged.max_assets = 6
    api = ApiHandlers(svc)
    rows, files = _count(svc, GeneratedAsset), _blob_files(svc)
    for seed in range(100, 3100, 100):
        out = api.generate_covers("5", str(seed // 100 % 24 + 1), 4, seed)
        assert all(v["asset_id"] is None for v in out["variants"])
    assert _count(svc, GeneratedAsset) == rows and _blob_files(svc) == files
    assert len(svc.assets.variants.staged.staging.stored()) <= 6  # the trial folder is bounded too


def test_the_label_queue_keeps_only_the_variants_it_pairs(services_factory):
    svc = services_factory(auto_pairs_max=3)
    api = ApiHandlers(svc)
    for seed in range(1, 21):  # 20 requests, 10 items: at most 3 pairs wait, so at most 6 variants are stored
        api.generate_covers("5", str(seed % 10 + 1), 4, seed * 1000)
    assert _count(svc, PairTask) == 3
    assert _count(svc, GeneratedAsset) == 6
    assert len(_paired_cover_paths(svc)) == 6 and all(svc.assets.file(p) for p in _paired_cover_paths(svc))
    # an annotator labels one of them: the pictures are there
    pair = api.next_pair("queue-annotator")
    assert pair["kind"] == "cover" and all(svc.assets.cover_file(pair[s]["cover_key"]) for s in ("a", "b"))
    assert api.label("queue-annotator", pair["pair_id"], "A", token=pair["token"])["choice"] == "A"


def test_a_pick_stores_the_variants_and_its_labels_work(services_factory):
    svc = services_factory(auto_pairs_max=0)
    visitor, _ = discover_tab.select_user(svc, Visitor(), "2")
    visitor, gallery, _, _ = create_tab.create_variants(svc, visitor, "3", 4)
    assert all(Path(p).is_file() for p, _ in gallery)  # shown from the trial folder
    # (the Create tab's caption is recorded: one per user and item, seed fixed)
    assert _count(svc, GeneratedAsset, COVER) == 0 and all(v["asset_id"] is None for v in visitor.variants)
    visitor, msg = create_tab.pick_variant(svc, visitor, 2)
    assert "preferred over 3 others" in msg
    ids = [v["asset_id"] for v in visitor.variants]
    assert all(ids) and _count(svc, GeneratedAsset, COVER) == 4 and _count(svc, PreferenceLabel) == 3
    for v in visitor.variants:  # in the blob store by key now, not only in the trial folder
        assert not os.path.isabs(v["path"]) and svc.assets.covers.store.blobs.exists(v["path"])
    visitor, _ = create_tab.pick_variant(svc, visitor, 0)  # picking again stores nothing twice
    assert _count(svc, GeneratedAsset, COVER) == 4
    # the pick's pairs go to other annotators too, with their pictures
    api = ApiHandlers(svc)
    pair = api.next_pair("pick-annotator")
    assert {pair["a"]["asset_id"], pair["b"]["asset_id"]} <= set(ids)
    assert all(svc.assets.cover_file(pair[s]["cover_key"]) for s in ("a", "b"))
    api.label("pick-annotator", pair["pair_id"], "B", token=pair["token"])


def test_a_pick_of_expired_variants_is_refused_with_a_clear_message(services_factory):
    svc = services_factory(auto_pairs_max=0)
    svc.assets.variants.staged.max_assets = 2
    visitor, _ = discover_tab.select_user(svc, Visitor(), "2")
    visitor, *_ = create_tab.create_variants(svc, visitor, "3", 4)  # four made, two kept on trial
    with pytest.raises(gr.Error, match="variants: expected variants made recently"):
        create_tab.pick_variant(svc, visitor, 0)
    assert _count(svc, GeneratedAsset, COVER) == 0 and _count(svc, PreferenceLabel) == 0


# ------------------------------------------------------------------------------------------------------------
# the API: keys and URLs, never server paths
# ------------------------------------------------------------------------------------------------------------
def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def test_no_api_answer_holds_a_server_path(fresh_svc):
    svc = fresh_svc
    api = ApiHandlers(svc)
    svc.labeling.make_pairs(1, seed=5)
    answers = [api.recommend("5", "ease", 3, True), api.generate_covers("5", "3", 4, 9),
               api.generate_caption("5", "3"), api.next_pair("path-annotator")]
    assert answers[3]["kind"] == "cover" and answers[0]["items"][0]["cover_url"]
    data_dir = str(svc.settings.data_dir)
    for text in _strings(json.loads(json.dumps(answers))):
        assert not os.path.isabs(text) and data_dir not in text and "path" not in text, text
        if text.startswith("covers/"):
            assert svc.assets.cover_file(text) is not None  # every key names a file this app serves


def test_cover_urls_fetch_the_images_over_http(live_app):
    url, svc = live_app
    api = ApiHandlers(svc)
    items = api.recommend("7", "ease", 2, True)["items"]
    variants = api.generate_covers("7", "5", 2, 4242)["variants"]
    for cover in [*items, *variants]:
        got = httpx.get(url + cover["cover_url"], timeout=10)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == svc.assets.cover_file(cover["cover_key"]).read_bytes()
    key = items[0]["cover_key"]
    for bad in (key.replace(".jpg", ".json"), "covers/" + key.split("/")[1] + "/" + "0" * 64 + ".jpg",
                key.replace("covers/", "covers/zz/", 1), "covers/../vitrine.db", "provenance/" + key[:-4] + ".json",
                "covers/00/" + key.split("/")[2]):
        assert httpx.get(url + bad, timeout=10).status_code == 404, bad
