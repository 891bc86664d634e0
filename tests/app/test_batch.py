"""`app.batch` on a local Ray (one cluster for the module, 2 CPUs) with the tiny models of generation.testing:
covers and captions reach the blob store and the database once each (a rerun makes nothing; a driver killed
mid-run leaves no duplicate and the rerun completes it), text features land in the app's feature cache, and the
segment pairs follow the documented rule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from app.batch import RayOptions, make_assets, make_features, segment_pairs
from vitrine_app_fixtures import GENRES, make_settings, make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_address():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from generation.testing import build_tiny_lm, build_tiny_sd

    root = tmp_path_factory.mktemp("models")
    return {"sd": str(build_tiny_sd(root / "sd")), "lm": str(build_tiny_lm(root / "lm"))}


def _rows(settings, kind: str) -> list[tuple]:
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_id, item_id, content_hash, path FROM generated_assets "
                                 "WHERE kind = :kind AND seed = 0"), {"kind": kind}).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _cover_files(settings) -> list[Path]:
    return sorted((Path(settings.blob_location) / "covers").rglob("*.jpg"))


def test_segment_pairs_give_each_user_their_genre_s_most_liked_unrated_items():
    dataset = make_tiny_dataset()
    pairs = segment_pairs(dataset, top_n=2)
    inter = dataset.interactions
    genre_of = dict(zip(dataset.items["item_id"], dataset.items["genres"]))
    by_user: dict[str, list[str]] = {}
    for user_id, item_id in pairs:
        by_user.setdefault(user_id, []).append(item_id)
    assert list(by_user) == [str(u) for u in range(1, 17)]  # every user liked a genre; users in id order
    for user_id, items in by_user.items():
        genre = GENRES[int(user_id) % 4]  # the tiny dataset: user u likes genre u % 4
        rated = set(inter.loc[inter["user_id"] == user_id, "item_id"])
        assert len(items) == 2 and not rated & set(items)
        assert all(genre_of[i] == [genre] for i in items)
        # the segment's most liked items first: counts of likes by the segment's users
        liked = inter[(inter["rating"] >= 4) & inter["user_id"].isin([u for u in by_user if int(u) % 4 == int(user_id) % 4])]
        counts = liked.groupby("item_id").size()
        assert counts.get(items[0], 0) >= counts.get(items[1], 0)
    with pytest.raises(ValueError, match="top_n must be an int >= 1"):
        segment_pairs(dataset, top_n=0)


def test_covers_and_captions_on_ray_are_recorded_once_and_served(ray_address, tiny_models, tmp_path):
    from annotation import reads
    from annotation.db import make_engine, make_session_factory

    dataset = make_tiny_dataset()
    settings = make_settings(tmp_path / "data", cover_model=tiny_models["sd"], caption_model=tiny_models["lm"],
                             device="cpu")
    options = RayOptions(actors=2)
    pairs = segment_pairs(dataset, top_n=2)
    first = make_assets(settings, "covers", "segments", dataset=dataset, top_n=2, batch_size=4, cover_size=64,
                        options=options)
    assert first["made"] == len(pairs) == 32 and first["already_recorded"] == 0 and first["fallback"] == 0
    rows = _rows(settings, "cover")
    assert sorted((u, i) for u, i, _, _ in rows) == sorted(pairs)  # one row per pair, no duplicate
    keys = {h for _, _, h, _ in rows}
    assert len(_cover_files(settings)) == len(keys)  # one file per content key
    again = make_assets(settings, "covers", "segments", dataset=dataset, top_n=2, batch_size=4, cover_size=64,
                        options=RayOptions(actors=2))
    assert again["made"] == 0 and again["already_recorded"] == 32
    captions = make_assets(settings, "captions", "generic", dataset=dataset, limit=6, batch_size=3,
                           options=RayOptions(actors=2))
    assert captions["made"] == 6
    assert sorted(i for u, i, _, _ in _rows(settings, "caption")) == sorted(str(i) for i in range(1, 7))
    # the app serves them: its slate rule finds each user's cover for each of their items
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        for user_id in ("1", "2"):
            items = [i for u, i in pairs if u == user_id]
            found = reads.shown_assets(s, user_id, items, 0)
            assert {(i, "cover") for i in items} <= set(found)
            assert all(found[(i, "cover")]["path"].startswith("covers/") for i in items)
    engine.dispose()


def test_a_driver_killed_mid_run_loses_nothing_and_the_rerun_adds_no_duplicate(ray_address, tiny_models, tmp_path):
    dataset = make_tiny_dataset()
    folder = tmp_path / "catalogue"  # the subprocess loads the same catalogue as a bring-your-own folder
    folder.mkdir()
    items = dataset.items.assign(genres=dataset.items["genres"].map("|".join))
    items[["item_id", "title", "genres", "year"]].to_csv(folder / "items.csv", index=False)
    dataset.interactions.to_csv(folder / "interactions.csv", index=False)
    settings = make_settings(tmp_path / "data", dataset=str(folder), cover_model=tiny_models["sd"], device="cpu")
    env = dict(os.environ, PYTHONPATH=str(ROOT), VITRINE_DATA_DIR=str(settings.data_dir),
               DATABASE_URL=settings.database_url, VITRINE_DATASET=str(folder),
               VITRINE_COVER_MODEL=tiny_models["sd"], VITRINE_DEVICE="cpu")
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen([sys.executable, "-m", "app.batch", "covers", "--pairs", "generic", "--ray-address",
                               ray_address, "--actors", "2", "--batch-size", "1", "--cover-size", "64"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while True:  # until the run has recorded a few covers (and is still going)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        assert time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
        if Path(settings.database_url.removeprefix("sqlite:///")).exists():
            try:
                if len(_rows(settings, "cover")) >= 3:
                    break
            except Exception:  # the tables are not there yet
                pass
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    log.close()
    before = _rows(settings, "cover")
    assert 3 <= len(before) < 24  # killed mid-run, and what was recorded stayed
    rerun = make_assets(settings, "covers", "generic", batch_size=2, cover_size=64, options=RayOptions(actors=2))
    after = _rows(settings, "cover")
    assert sorted(i for _, i, _, _ in after) == sorted(str(i) for i in range(1, 25))  # each item once
    assert rerun["already_recorded"] >= len(before) and rerun["made"] + rerun["already_recorded"] == 24
    assert len(_cover_files(settings)) == len({h for _, _, h, _ in after}) == 24  # one file per cover, none extra


def test_text_features_on_ray_fill_the_app_s_feature_cache(ray_address, tmp_path):
    from recommenders.features import compute_features, encode_texts, text_cache_path

    dataset = make_tiny_dataset()
    settings = make_settings(tmp_path / "data")
    summary = make_features(settings, dataset=dataset, batch_size=8, options=RayOptions(actors=2))
    path = text_cache_path(dataset, settings.data_dir / "features", settings.text_model)
    assert summary["path"] == str(path) and not summary["already_computed"] and path.is_file()
    stored = np.load(path)
    expected = encode_texts(dataset.items["text"].tolist())
    assert stored.shape == expected.shape == (24, 384)
    np.testing.assert_allclose(stored, expected, atol=1e-5)  # row order kept across actors and batches
    assert make_features(settings, dataset=dataset, options=RayOptions(actors=2))["already_computed"]
    found = compute_features(dataset, cache_dir=settings.data_dir / "features")  # what the app reads at start
    np.testing.assert_array_equal(found.arrays["text"], stored)
