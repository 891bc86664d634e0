"""The preference (reward) model: learns a known per-user truth, splits by time, saves without pickle."""

from __future__ import annotations

import io
import json
import random
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from generation.errors import InvalidInputError
from generation.reward import (
    Candidate,
    HashingEncoder,
    MiniLMEncoder,
    PreferencePair,
    RewardConfig,
    RewardModel,
    UserFeatures,
    _time_cut,
    best_of_n,
    image_statistics,
    pairs_from_labels,
    pairs_from_pick,
    records_from_frames,
)
from reward_helpers import GOLDEN, NEON, STYLES, make_users, make_world, truth_rank


@pytest.fixture(scope="module")
def world():
    return make_world(400, noise=0.1, seed=0)


@pytest.fixture(scope="module")
def fitted(world):
    pairs, users, candidates = world
    return RewardModel(HashingEncoder(64)).fit(pairs, users, candidates)


def _cover(aid: str, style: str, alpha: float = 0.6, title: str = "Heat", image=None) -> Candidate:
    return Candidate(aid, "cover", f'poster art for the film "{title}", {", ".join(STYLES[style])}',
                     STYLES[style], alpha, "fallback", image=image, item_id=title)


def test_learns_a_per_user_truth_and_reports_time_split_accuracy(world, fitted) -> None:
    pairs, users, _ = world
    m = fitted.metrics
    assert m["n_train"] + m["n_test"] == len(pairs) == m["n_pairs"]
    assert m["n_test"] == pytest.approx(0.2 * len(pairs), abs=1)
    assert m["heldout_accuracy"] >= 0.8  # the labels are 90% right: the truth is learnt, the noise is not
    assert m["split_at"] == sorted(p.at for p in pairs)[m["n_train"]]
    assert fitted.version.startswith("reward-") and m["version"] == fitted.version
    # fresh users of each kind, fresh items: the truly preferred style scores highest
    for uid, best in (("scifi-99", "neon"), ("romance-99", "golden")):
        kind = make_users(1)[uid.split("-")[0] + "-0"]
        user = UserFeatures(uid, kind.genres, kind.liked_texts, kind.liked_titles)
        covers = [_cover(f"x-{s}", s, title="Jumanji") for s in STYLES]
        pick = best_of_n(fitted, user, covers)
        assert pick.chosen.keywords == STYLES[best]
        assert pick.scores[pick.index] == max(pick.scores) and list(pick.order)[0] == pick.index
        assert pick.scores[pick.index] > pick.scores[pick.order[-1]]  # P(prefers the pick) > 0.5


def test_a_low_rank_model_learns_the_truth_with_a_weight_matrix_of_that_rank(world, fitted, tmp_path) -> None:
    """RewardConfig.rank: W = A B^T of that rank (penalised by its nuclear norm), deterministic, saved and loaded
    with its config; on the per-user truth it ranks fresh pairs as well as the full-rank model does."""
    pairs, users, candidates = world
    config = RewardConfig(rank=2, l2_grid=(0.1,))
    low = RewardModel(HashingEncoder(64), config).fit(pairs, users, candidates)
    assert np.linalg.matrix_rank(low.weights, tol=1e-8 * np.abs(low.weights).max()) <= 2
    assert low.metrics["l2"] == 0.1 and low.metrics["heldout_accuracy"] >= 0.8
    again = RewardModel(HashingEncoder(64), config).fit(pairs, users, candidates)
    assert np.array_equal(low.weights, again.weights) and low.version == again.version
    fresh, fresh_users, fresh_candidates = make_world(300, noise=0.0, seed=5)
    accuracy = low.pair_accuracy(fresh, fresh_users, fresh_candidates)
    assert accuracy >= 0.85 and accuracy >= fitted.pair_accuracy(fresh, fresh_users, fresh_candidates) - 0.03
    loaded = RewardModel.load(low.save(tmp_path / "low.npz"), HashingEncoder(64))
    assert loaded.config == config and np.array_equal(loaded.weights, low.weights)
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(InvalidInputError, match="RewardConfig.rank"):
            RewardConfig(rank=bad)


def test_heldout_accuracy_on_a_subset_is_the_split_models(world, fitted) -> None:
    """A gate compares a candidate with the served model on the newest held-out pairs only: the candidate's figure
    there comes from its split model (fitted before them), not from the refit that saw them."""
    pairs, users, candidates = world
    test = sorted(pairs, key=lambda p: p.at)[fitted.metrics["n_train"]:]
    assert fitted.heldout_accuracy(test) == pytest.approx(fitted.metrics["heldout_accuracy"])
    newest = test[len(test) // 2:]
    assert 0.0 <= fitted.heldout_accuracy(newest) <= 1.0
    with pytest.raises(InvalidInputError, match="pairs the last fit held out"):
        fitted.heldout_accuracy([sorted(pairs, key=lambda p: p.at)[0]])


def test_random_labels_give_chance_accuracy(world) -> None:
    pairs, users, candidates = world
    rng = random.Random(1)
    shuffled = [PreferencePair(p.user_id, *((p.winner, p.loser) if rng.random() < 0.5 else (p.loser, p.winner)),
                               at=p.at) for p in pairs]
    model = RewardModel(HashingEncoder(64)).fit(shuffled, users, candidates)
    assert model.metrics["heldout_accuracy"] < 0.7


def test_pick_among_n_gives_n_minus_1_pairs_kept_on_one_side_of_the_split() -> None:
    pairs = pairs_from_pick("u", "c", ["a", "b", "c", "d"], at=50.0)
    assert [(p.winner, p.loser, p.source) for p in pairs] == [("c", "a", "pick"), ("c", "b", "pick"),
                                                                ("c", "d", "pick")]
    with pytest.raises(InvalidInputError, match="picked"):
        pairs_from_pick("u", "z", ["a", "b"], at=1.0)
    timeline = [PreferencePair("u", "a", "b", at=float(t)) for t in range(7)] + pairs
    timeline.sort(key=lambda p: p.at)
    cut = _time_cut(timeline, 0.2)
    before, after = {p.at for p in timeline[:cut]}, {p.at for p in timeline[cut:]}
    assert not before & after and max(before) < min(after)


def test_labels_become_pairs_ties_and_skips_do_not() -> None:
    rows = [{"user_id": "u", "asset_a": 1, "asset_b": 2, "choice": "A", "at": pd.Timestamp("2026-01-01")},
            {"user_id": "u", "asset_a": 3, "asset_b": 4, "choice": "B", "at": 5},
            {"user_id": "u", "asset_a": 5, "asset_b": 6, "choice": "tie", "at": 6},
            {"user_id": "u", "asset_a": 7, "asset_b": 8, "choice": "skip", "at": 7}]
    pairs = pairs_from_labels(rows)
    assert [(p.winner, p.loser) for p in pairs] == [("1", "2"), ("4", "3")]
    assert pairs[0].at == pd.Timestamp("2026-01-01", tz="UTC").timestamp()
    with pytest.raises(InvalidInputError, match="choice"):
        pairs_from_labels([{**rows[0], "choice": "C"}])


def test_bad_input_is_refused_with_the_argument_named(world) -> None:
    pairs, users, candidates = world
    with pytest.raises(InvalidInputError, match="at least 10"):
        RewardModel(HashingEncoder(8)).fit(pairs[:5], users, candidates)
    with pytest.raises(InvalidInputError, match=r"pairs\[0\].user_id"):
        RewardModel(HashingEncoder(8)).fit([PreferencePair("nobody", "0a", "0b", 1.0)] + pairs, users, candidates)
    with pytest.raises(InvalidInputError, match="distinct times"):
        RewardModel(HashingEncoder(8)).fit([PreferencePair(p.user_id, p.winner, p.loser, 1.0) for p in pairs[:20]],
                                           users, candidates)
    with pytest.raises(InvalidInputError, match="fitted"):
        RewardModel(HashingEncoder(8)).score(next(iter(users.values())), [candidates["0a"]])
    with pytest.raises(InvalidInputError, match="Candidate.alpha"):
        Candidate("x", "cover", "p", (), 1.5)
    with pytest.raises(InvalidInputError, match="Candidate.text"):
        Candidate("x", "caption", "p")
    with pytest.raises(InvalidInputError, match="text_dim"):
        RewardConfig(text_dim=0)


def test_save_load_roundtrip_without_pickle(tmp_path, world, fitted) -> None:
    _, users, candidates = world
    path = fitted.save(tmp_path / "reward.npz")
    with zipfile.ZipFile(path) as z:  # every array is numeric or text: loadable with allow_pickle=False
        assert all(name.endswith(".npy") for name in z.namelist())
    loaded = RewardModel.load(path, encoder=HashingEncoder(64))
    user = users["scifi-0"]
    some = [candidates[k] for k in ("0a", "0b", "1a", "1b", "2a")]
    np.testing.assert_allclose(loaded.score(user, some), fitted.score(user, some))
    assert loaded.version == fitted.version and loaded.metrics == fitted.metrics
    with pytest.raises(InvalidInputError, match="encoder"):
        RewardModel.load(path, encoder=HashingEncoder(32))
    # a file saved before RewardConfig.rank existed holds a full-rank model, and says so when loaded
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(str(arrays["header"]))
    del header["config"]["rank"]
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    old = RewardModel.load(tmp_path / "old.npz", encoder=HashingEncoder(64))
    assert old.config.rank is None and RewardConfig().rank == 16
    np.testing.assert_allclose(old.score(user, some), fitted.score(user, some))


def _swatch(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 60), color).save(buf, format="JPEG")
    return buf.getvalue()


def test_image_statistics_and_blob_reader_learn_a_colour_preference() -> None:
    """No keywords, one prompt: the only signal is the picture, read by key through `read_bytes`."""
    blobs = {"blue": _swatch((20, 40, 200)), "red": _swatch((210, 30, 20))}
    reads = []

    def read_bytes(key: str) -> bytes:
        reads.append(key)
        return blobs[key.split("/")[0]]

    stats = image_statistics(Image.open(io.BytesIO(blobs["blue"])))
    assert stats.shape == (12,) and stats[2] > stats[0]  # blue mean above red mean
    users = make_users(6)
    rng = random.Random(0)
    candidates, pairs = {}, []
    for k in range(120):
        uid = rng.choice(sorted(users))
        for side, colour in (("a", "blue"), ("b", "red")):
            candidates[f"{k}{side}"] = Candidate(f"{k}{side}", "cover", "poster art", (), 0.0, "fallback",
                                                 image=f"{colour}/{k}")
        blue_wins = uid.startswith("scifi")
        pairs.append(PreferencePair(uid, f"{k}a" if blue_wins else f"{k}b", f"{k}b" if blue_wins else f"{k}a", k))
    model = RewardModel(HashingEncoder(16), read_bytes=read_bytes).fit(pairs, users, candidates)
    assert model.metrics["heldout_accuracy"] == 1.0
    assert reads and all("/" in r for r in reads)
    # a missing image is scored without image features, not an error
    lost = Candidate("lost", "cover", "poster art", image="gone/1")
    scores = model.score(users["scifi-0"], [lost, candidates["0a"]])
    assert np.isfinite(scores).all()


def _mean_colour(images: list) -> np.ndarray:
    """An image encoder (PIL images -> (n, d)): the unit-length mean colour, standing in for e.g. CLIP's."""
    out = np.array([np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(0) for im in images])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_image_embeddings_when_an_image_encoder_is_given(tmp_path) -> None:
    encode = _mean_colour

    blobs = {"blue": _swatch((20, 40, 200)), "red": _swatch((210, 30, 20))}
    users = make_users(4)
    candidates, pairs = {}, []
    for k in range(60):
        uid = sorted(users)[k % len(users)]
        for side, colour in (("a", "blue"), ("b", "red")):
            candidates[f"{k}{side}"] = Candidate(f"{k}{side}", "cover", "poster art", image=blobs[colour])
        pairs.append(PreferencePair(uid, f"{k}a", f"{k}b", k))  # everyone prefers blue
    model = RewardModel(HashingEncoder(16), RewardConfig(text_dim=4), image_encoder=encode).fit(pairs, users,
                                                                                              candidates)
    assert model.image_features == "clip" and model.metrics["heldout_accuracy"] == 1.0
    path = model.save(tmp_path / "clip-reward.npz")
    with pytest.raises(InvalidInputError, match="image_encoder"):
        RewardModel.load(path, encoder=HashingEncoder(16))
    again = RewardModel.load(path, encoder=HashingEncoder(16), image_encoder=encode)
    user = users[sorted(users)[0]]
    np.testing.assert_allclose(again.score(user, [candidates["0a"], candidates["0b"]]),
                               model.score(user, [candidates["0a"], candidates["0b"]]))


def test_caption_pairs_learn_caption_traits() -> None:
    """Sci-fi fans prefer captions that name a film they liked; romance fans prefer short ones."""
    users = make_users(8)
    rng = random.Random(3)
    candidates, pairs = {}, []
    for k in range(300):
        uid = rng.choice(sorted(users))
        liked = users[uid].liked_titles[0].split(" (")[0]
        texts = {"names": f"Because you enjoyed {liked}, Heat is a film for you tonight with a long story.",
                 "short": "Heat: picked for you."}
        for side, trait in (("a", "names"), ("b", "short")):
            candidates[f"{k}{side}"] = Candidate(f"{k}{side}", "caption", "Film: Heat.", (), 0.0, "fallback",
                                                 text=texts[trait])
        names_wins = uid.startswith("scifi")
        pairs.append(PreferencePair(uid, f"{k}a" if names_wins else f"{k}b", f"{k}b" if names_wins else f"{k}a", k))
    model = RewardModel(HashingEncoder(32)).fit(pairs, users, candidates)
    assert model.metrics["heldout_accuracy"] >= 0.95


def test_records_from_store_frames() -> None:
    assets = pd.DataFrame({
        "asset_id": [1, 2, 3], "kind": ["cover", "cover", "caption"], "item_id": ["9", "9", "9"],
        "generator": ["fallback", "sd", "fallback"], "prompt": ["p1", "p2", "req"],
        "params": [{"keywords": list(NEON), "alpha": 0.6}, {"keywords": list(GOLDEN), "alpha": 0.3}, {}],
        "path": ["/a/1.jpg", "/a/2.jpg", None], "text": [None, None, "A caption."],
    })
    prefs = pd.DataFrame({
        "kind": ["cover", "cover", "slate"], "target_user_id": ["u", None, "u"], "asset_a_id": [1, 1, None],
        "asset_b_id": [2, 2, None], "choice": ["B", "A", "A"],
        "created_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
    })
    pairs, candidates = records_from_frames(prefs, assets)
    assert [(p.user_id, p.winner, p.loser) for p in pairs] == [("u", "2", "1")]
    assert candidates["1"].keywords == NEON and candidates["1"].alpha == 0.6 and candidates["1"].image == "/a/1.jpg"
    assert candidates["3"].text == "A caption." and candidates["3"].image is None


def test_real_minilm_encoder() -> None:
    encode = MiniLMEncoder()
    out = encode(["futuristic neon city", "neon lights of a future city", "a tender love letter"])
    assert out.shape == (3, 384) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert out[0] @ out[1] > out[0] @ out[2]
    again = encode(["a tender love letter"])  # from the cache
    np.testing.assert_array_equal(again[0], out[2])
