"""The synthetic catalogue generator: determinism, the latent structure, both layouts, the CLI, bad input."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recommenders.__main__ import main
from recommenders.synthetic import (
    CATEGORIES, SynthConfig, generate, mmrec_labels, text_bases, titles_and_texts, write_catalogue,
)

SMALL = SynthConfig(n_items=600, n_users=400, n_interactions=4_000, seed=3)


def _fake_encoder(phrases: list[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: a phrase's vector from its words' hashed random vectors, so phrases
    that share words are similar (as with a real sentence encoder)."""
    out = np.zeros((len(phrases), 384), dtype=np.float32)
    for row, phrase in enumerate(phrases):
        for word in phrase.replace(",", " ").replace(":", " ").split():
            seed = int(hashlib.sha256(word.lower().encode()).hexdigest()[:8], 16)
            out[row] += np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != "synth.json"}


def test_same_seed_same_catalogue_other_seed_another():
    a, b = generate(SMALL), generate(SMALL)
    for name in ("item_topic", "user", "item", "rating", "timestamp", "x_label", "user_topics"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = generate(replace(SMALL, seed=4))
    assert not np.array_equal(a.item_topic, c.item_topic)


def test_interactions_have_the_requested_shape():
    cat = generate(SMALL)
    n = len(cat.user)
    assert 0.99 * SMALL.n_interactions <= n <= SMALL.n_interactions
    assert cat.user.dtype == np.int32 and cat.item.dtype == np.int32
    assert cat.user.min() == 0 and cat.user.max() == SMALL.n_users - 1
    assert 0 <= cat.item.min() and cat.item.max() < SMALL.n_items
    key = cat.user.astype(np.int64) * SMALL.n_items + cat.item
    assert len(np.unique(key)) == n  # each (user, item) pair once
    assert np.all(np.diff(cat.user) >= 0)  # grouped by user
    same = np.diff(cat.user) == 0
    assert np.all(np.diff(cat.timestamp)[same] >= 0)  # then by time
    assert set(np.unique(cat.rating)) <= {1, 2, 3, 4, 5}
    assert np.bincount(cat.user).min() >= 5  # the 5-core floor on users


def test_users_mostly_interact_with_their_topics():
    cat = generate(SMALL)
    mine = (cat.user_topics[cat.user] == cat.item_topic[cat.item][:, None]).any(1)
    # explore = 0.1 of draws ignore the topics, and heavy users who exhaust their topics' items in this tiny
    # catalogue browse elsewhere; the rest are in the user's topics
    assert mine.mean() > 0.75
    # and far above chance: the share of items in a random user's topics
    chance = np.mean([np.isin(cat.item_topic, cat.user_topics[u]).mean() for u in range(50)])
    assert mine.mean() > 4 * chance


def test_popularity_is_long_tailed():
    cat = generate(replace(SMALL, n_items=2_000, n_interactions=8_000))
    counts = np.sort(np.bincount(cat.item, minlength=2_000))[::-1]
    top = counts[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.4  # the top decile of items takes a large share
    flat = generate(replace(SMALL, n_items=2_000, n_interactions=8_000, popularity_exponent=0.0, explore=0.0))
    flat_counts = np.sort(np.bincount(flat.item, minlength=2_000))[::-1]
    assert flat_counts[:200].sum() / flat_counts.sum() < top


def test_mmrec_labels_follow_mmrecs_rule():
    # user 0: 8 rows (< 10: 6 train, 1 valid, 1 test); user 1: 25 rows (int(0.2*25)=5 leave: 2 valid, 3 test)
    user = np.repeat(np.array([0, 1], dtype=np.int32), [8, 25])
    labels = mmrec_labels(user, np.random.default_rng(0))
    assert np.bincount(labels[:8], minlength=3).tolist() == [6, 1, 1]
    assert np.bincount(labels[8:], minlength=3).tolist() == [20, 2, 3]
    # the order inside a user is random: not always the last rows
    other = mmrec_labels(user, np.random.default_rng(1))
    assert not np.array_equal(labels, other)


def test_titles_carry_the_topic_words():
    cat = generate(SMALL)
    titles, texts, genres = titles_and_texts(cat)
    assert len(titles) == len(texts) == len(genres) == SMALL.n_items
    names = list(CATEGORIES)
    for i in range(0, SMALL.n_items, 97):
        category = names[cat.topic_category[cat.item_topic[i]]]
        assert genres[i] == category
        assert any(noun in titles[i] for noun in CATEGORIES[category][0])
        assert texts[i].startswith(titles[i]) and f"Category: {category}" in texts[i]


def test_byo_layout_is_deterministic_and_loads(tmp_path):
    from recommenders.data import load_dataset

    a = write_catalogue(SMALL, tmp_path / "a")
    write_catalogue(SMALL, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert sorted(a["files"]) == ["dataset.yaml", "interactions.csv", "items.csv"]
    ds = load_dataset(tmp_path / "a", tmp_path)
    assert ds.kind == "product"
    assert len(ds.items) == SMALL.n_items and len(ds.users) == SMALL.n_users
    assert len(ds.interactions) == a["interactions"]
    assert ds.items["title"].str.len().min() > 10 and not ds.items["title"].duplicated().all()


def test_mmrec_layout_files(tmp_path):
    cfg = replace(SMALL, layout="mmrec", text_space="random", text_dim=48, image_dim=32)
    summary = write_catalogue(cfg, tmp_path / "shop")
    folder = tmp_path / "shop"
    inter = pd.read_csv(folder / "shop.inter", sep="\t")
    assert list(inter.columns) == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert len(inter) == summary["interactions"]
    assert set(inter["x_label"]) == {0, 1, 2}
    per_user = inter.groupby("userID")["x_label"].agg(lambda s: sorted(set(s)))
    assert all(labels == [0, 1, 2] for labels in per_user)  # >= 5 rows each: train, valid and test
    i_map = pd.read_csv(folder / "i_id_mapping.csv", sep="\t")
    u_map = pd.read_csv(folder / "u_id_mapping.csv", sep="\t")
    assert list(i_map.columns) == ["asin", "itemID"] and i_map["itemID"].tolist() == list(range(cfg.n_items))
    assert list(u_map.columns) == ["user_id", "userID"] and len(u_map) == cfg.n_users
    text = np.load(folder / "text_feat.npy")
    image = np.load(folder / "image_feat.npy")
    assert text.shape == (cfg.n_items, 48) and image.shape == (cfg.n_items, 32)
    assert text.dtype == np.float32 and image.dtype == np.float32
    assert np.isfinite(text).all() and np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    items = pd.read_csv(folder / "items.csv")
    assert items["item_id"].tolist() == i_map["asin"].tolist()
    assert "features:" in (folder / "dataset.yaml").read_text()
    # content follows the topics: items of one topic are closer than items of different topics
    cat = generate(cfg)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, cfg.n_items, 5_000), rng.integers(0, cfg.n_items, 5_000)
    for feats in (text, image):
        sim = (feats[a] * feats[b]).sum(1)
        same = cat.item_topic[a] == cat.item_topic[b]
        assert sim[same].mean() > sim[~same].mean() + 0.3


def test_features_do_not_depend_on_the_chunk_size(tmp_path):
    from recommenders.synthetic import write_features

    cfg = replace(SMALL, n_items=20_000, n_interactions=8_000, layout="mmrec", text_space="random", text_dim=16,
                  image_dim=8)
    cat = generate(cfg)
    for name, chunk in (("one", 65_536), ("many", 3_000)):
        (tmp_path / name).mkdir()
        write_features(cat, tmp_path / name, chunk=chunk)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "many")
    assert np.load(tmp_path / "one" / "text_feat.npy").shape == (20_000, 16)


def test_minilm_space_uses_the_encoder_on_phrases_only():
    cfg = replace(SMALL, layout="mmrec")
    cat = generate(cfg)
    calls: list[int] = []

    def encode(phrases):
        calls.append(len(phrases))
        return _fake_encoder(phrases)

    topic, noun, colour = text_bases(cat, encode)
    assert calls == [cfg.topics() + len(CATEGORIES) * 4 + len(colour)]  # one call, phrases not items
    assert topic.shape == (cfg.topics(), 384)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cat"
    args = ["synth", "--items", "300", "--users", "200", "--interactions", "2000", "--layout", "byo",
            "--out", str(out), "--seed", "1", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 300 and (out / "items.csv").is_file()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("change, message", [
    (dict(layout="csv"), "layout"),
    (dict(n_items=4), "n_items"),
    (dict(n_interactions=100), "n_interactions"),  # < 3 per user
    (dict(n_interactions=10**6), "n_interactions"),  # > 20% of the matrix
    (dict(layout="mmrec", text_dim=100), "text_dim"),  # minilm is 384-d
    (dict(explore=1.5), "explore"),
])
def test_bad_config_is_refused(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_catalogue(replace(SMALL, **change), tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()
