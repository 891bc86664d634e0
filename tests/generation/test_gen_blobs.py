"""Assets by key: the blob store (local directory or fsspec URL, read through a local cache) and the asset store
on top of it. Two replicas (two caches) share one store: what one generates, the other serves."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from PIL import Image

from generation.assets import Asset, AssetStore, asset_key
from generation.blobs import BlobStore, check_key
from generation.covers import CoverGenerator


def _cover(key: str) -> Asset:
    return Asset(kind="cover", item_id="1", user_id="u", generator="fallback", fallback=True, prompt="a poster",
                 negative_prompt="", seed=0, params={"image_format": "jpeg"}, content_hash=key)


def test_keys_are_relative_content_names():
    assert check_key("covers/ab/ab12.jpg") == "covers/ab/ab12.jpg"
    for bad in ("/etc/passwd", "covers/../x", "Covers/a.jpg", "", "a//b", None, "covers/ab/"):
        with pytest.raises(ValueError, match="key must be"):
            check_key(bad)


def test_local_store_writes_once_in_place(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    assert blobs.local_path("a/b.bin") is None and blobs.get("a/b.bin") is None and not blobs.exists("a/b.bin")
    assert blobs.put("a/b.bin", b"one") == "a/b.bin"
    assert blobs.put("a/b.bin", b"two") == "a/b.bin"  # a key names one content: the first stays
    assert blobs.get("a/b.bin") == b"one" and blobs.local_path("a/b.bin") == tmp_path / "blobs" / "a" / "b.bin"
    blobs.put("a/b.bin", b"fixed", replace=True)
    assert blobs.get("a/b.bin") == b"fixed"
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
    with pytest.raises(ValueError, match="data must be bytes"):
        blobs.put("a/c.bin", "text")


def test_remote_store_is_shared_and_cached_per_replica(tmp_path):
    url = f"memory://vitrine-blobs-{uuid.uuid4().hex[:8]}"
    one = BlobStore(url, cache_dir=tmp_path / "cache-1")
    two = BlobStore(url, cache_dir=tmp_path / "cache-2")
    one.put("covers/ab/x.jpg", b"pixels")
    assert not (tmp_path / "cache-2" / "covers" / "ab" / "x.jpg").exists()
    assert two.exists("covers/ab/x.jpg")
    fetched = two.local_path("covers/ab/x.jpg")  # a miss: fetched into replica 2's cache
    assert fetched == tmp_path / "cache-2" / "covers" / "ab" / "x.jpg" and fetched.read_bytes() == b"pixels"
    assert two.local_path("covers/ab/missing.jpg") is None
    with pytest.raises(ValueError, match="cache_dir must be"):
        BlobStore(url)
    with pytest.raises(ValueError, match="url must be"):
        BlobStore("")


def test_any_replica_serves_any_cover_by_key(tmp_path):
    url = f"memory://vitrine-assets-{uuid.uuid4().hex[:8]}"
    one = AssetStore(BlobStore(url, cache_dir=tmp_path / "replica-1"))
    two = AssetStore(BlobStore(url, cache_dir=tmp_path / "replica-2"))
    key = asset_key("cover", {"x": 1})
    stored = one.put(_cover(key), Image.new("RGB", (8, 12), (10, 20, 30)))
    assert stored.path == f"covers/{key[:2]}/{key}.jpg"  # the key, what the database records: no local path
    hit = two.get("cover", key, "someone")
    assert hit is not None and hit.cache_hit and hit.path == stored.path and hit.user_id == "someone"
    local = two.local_path(hit.path)
    assert local.is_relative_to(tmp_path / "replica-2") and Image.open(local).size == (8, 12)
    # only images under the folder the app serves; provenance (prompts) elsewhere
    assert two.public_dir == tmp_path / "replica-2" / "covers"
    assert [p.suffix for p in two.public_dir.rglob("*") if p.is_file()] == [".jpg"]
    assert not list(one.public_dir.rglob("*.json"))
    assert json.loads(one.meta_path("cover", key).read_text())["prompt"] == "a poster"
    # rows written before assets were stored by key hold an absolute path: still resolved
    assert one.local_path(str(local)) == local and one.local_path("/no/such/file.jpg") is None
    assert one.local_path(None) is None


def test_cover_generator_files_covers_by_key_in_a_blob_store(tmp_path, toy_story):
    blobs = BlobStore(tmp_path / "shared", cache_dir=tmp_path / "cache")
    [asset] = CoverGenerator(None, blobs, size=64).generate(toy_story, None)
    assert not Path(asset.path).is_absolute() and (tmp_path / "shared" / asset.path).is_file()
    other = CoverGenerator(None, BlobStore(tmp_path / "shared", cache_dir=tmp_path / "cache-2"), size=64)
    [again] = other.generate(toy_story, None)
    assert again.cache_hit and again.path == asset.path
    assert (tmp_path / "cache-2" / asset.path).read_bytes() == (tmp_path / "shared" / asset.path).read_bytes()


def test_covers_on_trial_stay_out_of_the_store_until_promoted(tmp_path):
    from generation.assets import StagedAssetStore

    main = AssetStore(BlobStore(tmp_path / "blobs"))
    staged = StagedAssetStore(main, tmp_path / "staging", max_assets=2)
    keys = [asset_key("cover", {"n": i}) for i in range(3)]
    for i, key in enumerate(keys):
        out = staged.put(_cover(key), Image.new("RGB", (8, 12), (i, 0, 0)))
        assert staged.holds(out.path) and Path(out.path).is_file()
    assert main.stored() == {}  # nothing reached the store
    assert set(staged.staging.stored()) == set(keys[1:])  # the oldest trial pushed out past max_assets
    assert staged.promote(keys[0]) is None  # gone from both: make it again
    path = staged.promote(keys[2])
    assert path == AssetStore.image_key(keys[2]) and main.local_path(path).is_file()
    assert staged.promote(keys[2]) == path and set(main.stored()) == {keys[2]}  # idempotent
    assert main.get("cover", keys[2], "u").path == path  # a stored one is read from the store first
    assert staged.get("cover", keys[2], "u").path == path
    assert staged.image_file(AssetStore.image_key(keys[1])) is not None  # still on trial, still served
    with pytest.raises(ValueError, match="main must be"):
        StagedAssetStore(BlobStore(tmp_path / "x"), tmp_path / "s")


def test_a_local_store_lists_and_evicts_its_blobs(tmp_path):
    store = AssetStore(BlobStore(tmp_path / "blobs"))
    key = asset_key("cover", {"n": 1})
    store.put(_cover(key), Image.new("RGB", (8, 12)))
    (tmp_path / "blobs" / "covers" / key[:2] / ".tmp-half.jpg").write_bytes(b"x")  # an unfinished write: skipped
    held = store.stored()
    assert list(held) == [key] and len(held[key].blob_keys) == 2 and held[key].size > 0
    assert store.evict(held[key]) == held[key].size
    assert store.get("cover", key, "u") is None and store.stored() == {}


def test_held_says_whether_a_blob_is_gone_without_fetching_it(tmp_path):
    """A slate asks `held` for every cover: a local store's evicted file is gone; a remote store's object stays
    (only the cached copy was evicted) and is not downloaded to answer."""
    local = BlobStore(tmp_path / "blobs")
    local.put("covers/ab/x.jpg", b"x")
    assert local.held("covers/ab/x.jpg")
    local.evict("covers/ab/x.jpg")
    assert not local.held("covers/ab/x.jpg")
    remote = BlobStore(f"memory://vitrine-held-{uuid.uuid4().hex[:8]}", cache_dir=tmp_path / "cache")
    remote.put("covers/cd/y.jpg", b"y")
    remote.evict("covers/cd/y.jpg")
    assert remote.held("covers/cd/y.jpg") and not (tmp_path / "cache" / "covers/cd/y.jpg").exists()
    store = AssetStore(local)
    assert not store.held(None) and not store.held(str(tmp_path / "nope.jpg")) and not store.held("covers/ab/x.jpg")
