"""The shared model contract, on a checkerboard (even users like even items, odd users like odd items).

Each model class only says how to build itself; the mixin checks that the held-out item ranks first,
batch == single user, save/load round-trips bit-exactly without pickle, fold-in, and the error cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommenders.errors import (
    ColdVisitorError,
    ModelFitError,
    NotFittedError,
    UnknownItemError,
    UnknownModelError,
    UnknownUserError,
)
from recommenders.models import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_WITHOUT_FEATURES,
    FEATURE_MODELS,
    MODEL_NAMES,
    create_model,
    load_model,
)

N_USERS, N_ITEMS = 16, 12
ITEMS = [f"i{i}" for i in range(N_ITEMS)]
FAST_SGD = {"epochs": 60, "batch_size": 16, "lr": 0.05, "seed": 1}


def held_out(u: int) -> int:
    """Each user holds out one same-parity item; every item is still liked by other users in train."""
    return (u % 2) + 2 * ((u // 2) % (N_ITEMS // 2))


def checkerboard() -> pd.DataFrame:
    rows = [(f"u{u}", f"i{i}") for u in range(N_USERS) for i in range(N_ITEMS)
            if i % 2 == u % 2 and i != held_out(u)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def parity_features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    f = rng.normal(scale=0.1, size=(N_ITEMS, 8)).astype(np.float32)
    f[:, 0] += np.where(np.arange(N_ITEMS) % 2 == 0, 1.0, -1.0)
    return {"text": f}


@pytest.fixture(scope="class")
def model(request: pytest.FixtureRequest):
    """The class's model, fitted once per test class on the checkerboard."""
    cls = request.cls
    return create_model(cls.name, **cls.params).fit(checkerboard(), ITEMS, parity_features())


class ModelContract:
    name: str = ""
    params: dict = {}
    personalised = True

    def test_held_out_item_ranks_first(self, model) -> None:
        if not self.personalised:
            pytest.skip("a non-personalised model ranks every user the same way")
        for u in range(N_USERS):
            ids, scores = model.recommend(f"u{u}", k=3)
            assert ids[0] == f"i{held_out(u)}", (u, ids)
            assert np.all(np.diff(scores) <= 0)

    def test_recommend_excludes_seen(self, model) -> None:
        seen = set(checkerboard().query("user_id == 'u0'")["item_id"])
        ids, _ = model.recommend("u0", k=N_ITEMS)
        assert not set(ids) & seen and len(ids) == N_ITEMS - len(seen)
        ids_all, _ = model.recommend("u0", k=N_ITEMS, exclude_seen=False)
        assert len(ids_all) == N_ITEMS

    def test_batch_equals_single(self, model) -> None:
        users = [f"u{u}" for u in range(N_USERS)]
        batch_ids, batch_scores = model.recommend_batch(users, k=5)
        for user, ids, scores in zip(users, batch_ids, batch_scores):
            single_ids, single_scores = model.recommend(user, k=5)
            assert ids == single_ids
            np.testing.assert_array_equal(scores, single_scores)
        np.testing.assert_array_equal(model.score_batch([3, 1])[0], model.score(3))

    def test_save_load_round_trip(self, model, tmp_path: Path) -> None:
        model.save(tmp_path / "m")
        assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arrays.npz", "params.json"]
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.params == model.params
        for u in ("u0", "u5"):
            a, sa = model.recommend(u, k=5)
            b, sb = loaded.recommend(u, k=5)
            assert a == b
            np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(loaded.recommend_from_items(["i0", "i2", "i4"], 3)[1],
                                      model.recommend_from_items(["i0", "i2", "i4"], 3)[1])

    def test_fold_in_new_user(self, model) -> None:
        ids, scores = model.recommend_from_items(["i0", "i2", "i4"], k=3)
        assert len(ids) == 3 and not {"i0", "i2", "i4"} & set(ids)
        if self.personalised:
            assert all(int(i[1:]) % 2 == 0 for i in ids), ids  # a new even-liking user gets even items
        with pytest.raises(UnknownItemError, match="item_id: expected an item of the catalogue"):
            model.recommend_from_items(["i0", "nope"], k=3)
        with pytest.raises(ValueError, match="item_ids: expected a non-empty sequence"):
            model.recommend_from_items([], k=3)
        for stranger in (None, "ghost"):  # a visitor the model was not fitted on, with no like: nothing to rank from
            with pytest.raises(ColdVisitorError, match="liked: a visitor the model was not fitted on"):
                model.recommend_with_feedback(stranger, liked=[], k=3)
        assert model.recommend_with_feedback("ghost", liked=["i0", "i2"], k=3)[0] == \
            model.recommend_with_feedback(None, liked=["i0", "i2"], k=3)[0]  # an unknown id is a new visitor

    def test_skipped_items_count_within_a_visit(self, model) -> None:
        """With skipped items the ranking is (1 - mix) z(fold-in) + mix z(neighbour votes), the same on every
        model's score type (dense, sparse, factor); without any nothing changes; skipped items are not left out."""
        from recommenders.visit import DEFAULT_VISIT, blend_scores

        liked, skipped, k = ["i0", "i2"], ["i4", "i1"], N_ITEMS - 2
        ids, scores = model.recommend_with_feedback(None, liked=liked, k=k, skipped=skipped)
        assert not set(liked) & set(ids) and set(skipped) <= set(ids)
        items = np.array([model.item_index(i) for i in liked])
        votes = model.visit_index().neighbour_scores(items, np.empty(0, np.int64),
                                                     np.array([model.item_index(i) for i in skipped]))
        dense = blend_scores(np.asarray(model._fold_in(items), dtype=np.float64), votes, DEFAULT_VISIT.mix)
        np.testing.assert_allclose(scores, np.sort(np.delete(dense, items))[::-1], atol=1e-9)
        np.testing.assert_allclose(dense[[model.item_index(i) for i in ids]], scores, atol=1e-9)
        plain = model.recommend_with_feedback(None, liked=liked, k=k)
        for same in (model.recommend_with_feedback(None, liked=liked, k=k, skipped=[]),
                     model.recommend_with_feedback(None, liked=liked, k=k, skipped=["i0"])):  # a liked skip is a like
            assert same[0] == plain[0]
            np.testing.assert_array_equal(same[1], plain[1])

    def test_errors(self, model) -> None:
        with pytest.raises(UnknownUserError, match="user_id: expected a user seen at fit time.*'ghost'"):
            model.recommend("ghost", k=3)
        with pytest.raises(ValueError, match="k: expected a positive integer, got 0"):
            model.recommend("u0", k=0)
        with pytest.raises(NotFittedError):
            create_model(self.name, **self.params).recommend("u0", 3)
        bad = pd.DataFrame({"user_id": ["u0"], "item_id": ["zzz"]})
        with pytest.raises(ModelFitError, match="row 1, column 'item_id': 'zzz' is not in item_ids"):
            create_model(self.name, **self.params).fit(bad, ITEMS, parity_features())


class TestPop(ModelContract):
    name = "pop"
    personalised = False

    def test_most_popular_first(self) -> None:
        data = pd.DataFrame({"user_id": ["a", "b", "c", "c"], "item_id": ["x", "x", "x", "y"]})
        model = create_model("pop").fit(data, ["x", "y", "z"])
        assert model.recommend("a", 3, exclude_seen=False)[0] == ["x", "y", "z"]


class TestItemKNN(ModelContract):
    name = "itemknn"
    params = {"k": 5}


class TestEASE(ModelContract):
    name = "ease"
    params = {"reg": 1.0}


class TestEASEText(ModelContract):
    name = "ease-text"
    params = {"reg": 1.0, "text_weight": 0.5}


class TestSparseEASE(ModelContract):
    name = "sparse-ease"
    params = {"reg": 1.0, "neighbours": 4}


class TestSparseEASEText(ModelContract):
    name = "sparse-ease-text"
    params = {"reg": 1.0, "text_weight": 0.5, "neighbours": 4, "text_neighbours": 2}


class TestLowPass(ModelContract):
    name = "lowpass"
    params = {"factors": 2}


def test_lowpass_is_the_ideal_low_pass_filter(monkeypatch) -> None:
    """s_u = x_u D^-1/2 V V^T D^1/2 with V the leading right singular vectors of D_U^-1/2 X D_I^-1/2 (GF-CF);
    the sparse (ARPACK) path gives the dense path's scores; a new user is folded in through the same filter."""
    import recommenders.models.lowpass as lowpass

    data = checkerboard()
    dense = create_model("lowpass", factors=4).fit(data, ITEMS)  # sigma_4 > sigma_5: the subspace is unique
    x = np.zeros((N_USERS, N_ITEMS))
    for u, i in zip(data["user_id"], data["item_id"]):
        x[dense.user_index(u), ITEMS.index(i)] = 1.0
    du, di = x.sum(1), x.sum(0)
    vt = np.linalg.svd(x / np.sqrt(du)[:, None] / np.sqrt(di)[None, :])[2][:4]
    expected = (x / np.sqrt(di)) @ vt.T @ vt * np.sqrt(di)
    np.testing.assert_allclose(dense.score_batch(range(N_USERS)), expected, atol=1e-10)
    monkeypatch.setattr(lowpass, "DENSE_SVD_CELLS", 0)
    sparse = create_model("lowpass", factors=4).fit(data, ITEMS)
    np.testing.assert_allclose(sparse.score_batch(range(N_USERS)), expected, atol=1e-8)
    u = dense.user_index("u4")
    np.testing.assert_allclose(dense._fold_in(np.flatnonzero(x[u])), expected[u], atol=1e-10)
    with pytest.raises(ValueError, match="factors: expected a positive integer, got 0"):
        create_model("lowpass", factors=0).fit(data, ITEMS)


class TestBPR(ModelContract):
    name = "bpr"
    params = {**FAST_SGD, "dim": 8}


class TestLightGCN(ModelContract):
    name = "lightgcn"
    params = {**FAST_SGD, "dim": 8}


class TestText(ModelContract):
    name = "text"
    params = {**FAST_SGD, "content_dim": 8}


class TestVBPR(ModelContract):
    name = "vbpr"
    params = {**FAST_SGD, "dim": 8, "content_dim": 8}


def test_registry() -> None:
    assert set(MODEL_NAMES) == {"pop", "itemknn", "bpr", "lightgcn", "ease", "ease-text", "sparse-ease",
                                "sparse-ease-text", "text", "vbpr",
                                "two-tower", "freedom", "lowpass", "blend", "sasrec", "sasrec-content"}
    assert DEFAULT_MODEL in MODEL_NAMES and DEFAULT_MODEL_WITHOUT_FEATURES not in FEATURE_MODELS
    with pytest.raises(UnknownModelError, match="name: expected one of"):
        create_model("svd")
    with pytest.raises(ValueError, match="unknown parameter"):
        create_model("ease", lambda_=3)


def test_feature_models_need_features() -> None:
    with pytest.raises(ModelFitError, match=r"features\['text'\] is required"):
        create_model("text").fit(checkerboard(), ITEMS)
    with pytest.raises(ModelFitError, match=r"expected shape \(12, d\)"):
        create_model("vbpr").fit(checkerboard(), ITEMS, {"text": np.zeros((3, 4))})


def test_ease_text_uses_content_and_reduces_to_ease() -> None:
    feats = parity_features()
    plain = create_model("ease", reg=1.0).fit(checkerboard(), ITEMS)
    zero = create_model("ease-text", reg=1.0, text_weight=0.0).fit(checkerboard(), ITEMS, feats)
    np.testing.assert_allclose(zero.B, plain.B)
    # an item nobody interacted with gets weight from the items whose text reads alike
    data = checkerboard()[lambda d: d["item_id"] != "i10"]
    cold = create_model("ease-text", reg=1.0, text_weight=5.0).fit(data, ITEMS, feats)
    assert cold.B[ITEMS.index("i0"), ITEMS.index("i10")] > 0  # even item -> the cold even item
    assert create_model("ease", reg=1.0).fit(data, ITEMS).B[:, ITEMS.index("i10")].max() == 0


def test_ease_text_reads_how_much_each_user_liked_an_item() -> None:
    """The centred-rating term: two items rated on the same side of a user's mean pull together, two rated on
    opposite sides apart; without ratings, with rating_weight 0, or with every rating equal, nothing changes."""
    feats = parity_features()
    data = checkerboard()
    no_ratings = create_model("ease-text", reg=1.0, text_weight=0.5).fit(data, ITEMS, feats)
    # every even user rates i0 and i2 high and i4, i6 low; the binary data is unchanged
    rated = data.assign(rating=np.where(data["item_id"].isin(["i0", "i2"]), 5.0, np.where(
        data["item_id"].isin(["i4", "i6"]), 1.0, 3.0)))
    model = create_model("ease-text", reg=1.0, text_weight=0.5).fit(rated, ITEMS, feats)
    off = create_model("ease-text", reg=1.0, text_weight=0.5, rating_weight=0.0).fit(rated, ITEMS, feats)
    flat = create_model("ease-text", reg=1.0, text_weight=0.5).fit(data.assign(rating=4.0), ITEMS, feats)
    np.testing.assert_allclose(off.B, no_ratings.B)
    np.testing.assert_allclose(flat.B, no_ratings.B)
    i0, i2, i4 = ITEMS.index("i0"), ITEMS.index("i2"), ITEMS.index("i4")
    assert model.B[i0, i2] > no_ratings.B[i0, i2] and model.B[i0, i4] < no_ratings.B[i0, i4]
    # the closed form: G = X^T X + w F F^T + c Xc^T Xc, Xc centred on each user's mean over the items they rated
    x = np.zeros((N_USERS, N_ITEMS))
    xc = np.zeros_like(x)
    for u, g in rated.groupby("user_id"):
        row, cols = model.user_index(u), [ITEMS.index(i) for i in g["item_id"]]
        x[row, cols] = 1.0
        xc[row, cols] = g["rating"].to_numpy() - g["rating"].mean()
    f = feats["text"].astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    p = np.linalg.inv(x.T @ x + 0.5 * f @ f.T + 0.2 * xc.T @ xc + np.eye(N_ITEMS))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.B, b, atol=1e-10)
    with pytest.raises(ValueError, match="rating_weight: expected a non-negative weight, got -1.0"):
        create_model("ease-text", rating_weight=-1.0).fit(rated, ITEMS, feats)


def test_dislikes_are_not_positives_but_stay_seen() -> None:
    data = checkerboard().assign(weight=1.0)
    data = pd.concat([data, pd.DataFrame({"user_id": ["u0"], "item_id": ["i1"], "weight": [-1.0]})])
    model = create_model("ease", reg=1.0).fit(data, ITEMS)
    ids, _ = model.recommend("u0", k=N_ITEMS)
    assert "i1" not in ids  # disliked: never recommended again
    plain = create_model("ease", reg=1.0).fit(checkerboard(), ITEMS)
    np.testing.assert_allclose(model.B, plain.B)  # and not learned from as a positive


def test_iterative_models_are_seeded() -> None:
    a = create_model("bpr", **FAST_SGD, dim=8).fit(checkerboard(), ITEMS)
    b = create_model("bpr", **FAST_SGD, dim=8).fit(checkerboard(), ITEMS)
    np.testing.assert_array_equal(a.U, b.U)
    c = create_model("bpr", **{**FAST_SGD, "seed": 2}, dim=8).fit(checkerboard(), ITEMS)
    assert not np.array_equal(a.U, c.U)


def test_early_stopping_records_history_and_stops() -> None:
    data = checkerboard()
    valid = pd.DataFrame({"user_id": [f"u{u}" for u in range(N_USERS)],
                          "item_id": [f"i{held_out(u)}" for u in range(N_USERS)]})
    model = create_model("bpr", **{**FAST_SGD, "epochs": 200, "patience": 3}, dim=8).fit(data, ITEMS, valid=valid)
    assert 3 < len(model.history) < 200  # perfect valid NDCG is reached, then 3 evaluations without gain stop it
    assert all("valid_ndcg@10" in h for h in model.history)
    assert max(h["valid_ndcg@10"] for h in model.history) == pytest.approx(1.0)


def test_vbpr_uses_every_modality_it_is_given() -> None:
    """Text is noise here and only the image carries taste: cold items must still be ranked by the image."""
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(N_ITEMS, 6)).astype(np.float32)
    image = parity_features()["text"]
    data = checkerboard()[lambda d: ~d["item_id"].isin(["i10", "i11"])]  # two items nobody interacted with
    model = create_model("vbpr", **FAST_SGD, dim=8, content_dim=8).fit(data, ITEMS, {"text": noise, "image": image})
    even, odd = model.item_index("i10"), model.item_index("i11")
    for u in range(N_USERS):
        s = model.score(model.user_index(f"u{u}"))
        assert (s[even] > s[odd]) == (u % 2 == 0), u
