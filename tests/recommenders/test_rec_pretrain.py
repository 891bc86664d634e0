"""Issue 16 models (two-tower, freedom, sasrec, blend) on the shared contract, plus what each one claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommenders.models import create_model
from tests.recommenders.test_rec_models import (
    FAST_SGD,
    ITEMS,
    N_ITEMS,
    N_USERS,
    ModelContract,
    checkerboard,
    model,  # noqa: F401 - the class-scoped fitted-model fixture the contract uses
    parity_features,
)


class TestTwoTower(ModelContract):
    name = "two-tower"
    params = {**FAST_SGD, "dim": 8, "experts": 2, "batch_size": 32}


def test_two_tower_ranks_cold_items_by_content() -> None:
    """Two items nobody interacted with: the content tower alone must put the same-parity one first."""
    data = checkerboard()[lambda d: ~d["item_id"].isin(["i10", "i11"])]
    model = create_model("two-tower", **{**FAST_SGD, "batch_size": 32}, dim=8, experts=2).fit(data, ITEMS, parity_features())
    even, odd = model.item_index("i10"), model.item_index("i11")
    np.testing.assert_array_equal(model.b[[even, odd]], 0.0)  # no learned bias for never-seen items
    for u in range(N_USERS):
        s = model.score(model.user_index(f"u{u}"))
        assert (s[even] > s[odd]) == (u % 2 == 0), u


def test_two_tower_alignment_pulls_id_and_content_together() -> None:
    """With the alignment loss, each item's ID embedding is closer (cosine) to its own content embedding."""
    import torch

    from recommenders.models import two_tower

    captured = {}
    original = two_tower.train_epochs

    def spy(module, *args, **kwargs):
        original(module, *args, **kwargs)
        captured["module"] = module

    params = {**FAST_SGD, "dim": 8, "experts": 2, "batch_size": 32, "id_dropout": 0.0}
    cosines = {}
    for weight in (0.0, 1.0):
        two_tower.train_epochs = spy
        try:
            create_model("two-tower", **params, align_weight=weight).fit(checkerboard(), ITEMS, parity_features())
        finally:
            two_tower.train_epochs = original
        m = captured["module"]
        with torch.no_grad():
            _, e, c = m.item_vectors()
            cosines[weight] = float(torch.nn.functional.cosine_similarity(e, c, dim=1).mean())
    assert cosines[1.0] > 0.5 and cosines[1.0] > cosines[0.0] + 0.2, cosines


def test_two_tower_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="temperature: expected a positive temperature"):
        create_model("two-tower", temperature=0.0).fit(checkerboard(), ITEMS, parity_features())
    with pytest.raises(ValueError, match="id_dropout: expected a probability"):
        create_model("two-tower", id_dropout=1.0).fit(checkerboard(), ITEMS, parity_features())


class TestFreedom(ModelContract):
    name = "freedom"
    params = {**FAST_SGD, "dim": 8, "knn": 3}


def test_knn_graph_is_sparse_symmetric_and_excludes_self() -> None:
    from recommenders.models.freedom import knn_graph

    f = parity_features()["text"]
    g = knn_graph(f, k=3, chunk=5)  # several chunks
    assert g.nnz <= 2 * 3 * len(f) and g.diagonal().max() == 0
    dense = g.toarray()
    assert (dense > 0).sum(1).min() >= 3
    # neighbours read alike: every edge joins two items of the same parity (the features' first axis)
    r, c = np.nonzero(dense)
    assert np.all(r % 2 == c % 2)
    with pytest.raises(ValueError, match="knn: expected 1 <= knn < n_items"):
        knn_graph(f, k=len(f))


def test_freedom_scores_cold_items_through_content_neighbours() -> None:
    data = checkerboard()[lambda d: ~d["item_id"].isin(["i10", "i11"])]
    model = create_model("freedom", **FAST_SGD, dim=8, knn=3).fit(data, ITEMS, parity_features())
    even, odd = model.item_index("i10"), model.item_index("i11")
    assert np.abs(model.V[[even, odd]]).sum() > 0  # neighbours' embeddings reach the never-seen items
    for u in range(N_USERS):
        s = model.score(model.user_index(f"u{u}"))
        assert (s[even] > s[odd]) == (u % 2 == 0), u


TT_FAST = {**FAST_SGD, "dim": 8, "experts": 2, "batch_size": 32}


BASE = {"reg": 1.0, "text_weight": 0.5}
FR_FAST = {**FAST_SGD, "dim": 8, "knn": 3}
LP_FAST = {"factors": 3}
PARTNERS_FAST = [FR_FAST, TT_FAST, LP_FAST]  # the default partners: freedom, two-tower, lowpass


class TestBlend(ModelContract):
    name = "blend"
    params = {"base_params": BASE, "partners": ["two-tower"], "partner_params": [TT_FAST], "weights": [0.5]}


def held_out_valid() -> pd.DataFrame:
    from tests.recommenders.test_rec_models import held_out

    return pd.DataFrame({"user_id": [f"u{u}" for u in range(N_USERS)],
                         "item_id": [f"i{held_out(u)}" for u in range(N_USERS)]})


class TestBlendDefaultPartners(ModelContract):
    name = "blend"
    params = {"base_params": BASE, "partner_params": PARTNERS_FAST}

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, request: pytest.FixtureRequest):  # default weights="valid": fit chooses them on `valid`
        return create_model(cls.name, **cls.params).fit(checkerboard(), ITEMS, parity_features(),
                                                        valid=held_out_valid())


def test_blend_hands_the_ratings_to_its_base() -> None:
    feats = parity_features()
    data = checkerboard()
    rated = data.assign(rating=np.where(data["item_id"].isin(["i0", "i2"]), 5.0, 2.0))
    kw = dict(base_params=BASE, partners=["two-tower"], partner_params=[TT_FAST], weights=[0.0])
    blend = create_model("blend", **kw).fit(rated, ITEMS, feats)
    base = create_model("ease-text", **BASE).fit(rated, ITEMS, feats)
    np.testing.assert_allclose(blend.parts[0].B, base.B)
    assert not np.allclose(base.B, create_model("ease-text", **BASE).fit(data, ITEMS, feats).B)


def test_blend_is_the_weighted_sum_of_standardised_component_scores() -> None:
    feats = parity_features()
    kw = dict(base_params=BASE, partner_params=PARTNERS_FAST, weights=[0.5, 2.0, 1.5])
    blend = create_model("blend", **kw, standardise="all").fit(checkerboard(), ITEMS, feats)
    unseen = create_model("blend", **kw).fit(checkerboard(), ITEMS, feats)  # default: standardise="unseen"
    base = create_model("ease-text", **BASE).fit(checkerboard(), ITEMS, feats)
    fr = create_model("freedom", **FR_FAST).fit(checkerboard(), ITEMS, feats)
    tt = create_model("two-tower", **TT_FAST).fit(checkerboard(), ITEMS, feats)
    lp = create_model("lowpass", **LP_FAST).fit(checkerboard(), ITEMS, feats)
    z = lambda s: (s - s.mean()) / s.std()  # noqa: E731
    for u in (0, 5):
        np.testing.assert_allclose(blend.score(u), z(base.score(u)) + 0.5 * z(fr.score(u)) + 2.0 * z(tt.score(u))
                                   + 1.5 * z(lp.score(u)), rtol=1e-6)
        seen = base.seen_items(u)
        mask = np.ones(N_ITEMS, dtype=bool)
        mask[seen] = False  # mean and spread of the items the user has not interacted with
        zu = lambda s: (s - s[mask].mean()) / s[mask].std()  # noqa: E731
        assert 0 < len(seen) < N_ITEMS
        np.testing.assert_allclose(unseen.score(u), zu(base.score(u)) + 0.5 * zu(fr.score(u)) + 2.0 * zu(tt.score(u))
                                   + 1.5 * zu(lp.score(u)), rtol=1e-6)
    zero = create_model("blend", base_params=BASE, partner_params=PARTNERS_FAST, weights=[0.0, 0.0, 0.0]).fit(
        checkerboard(), ITEMS, feats)
    assert zero.recommend("u3", 5)[0] == base.recommend("u3", 5)[0]  # zero weights: the base model
    with pytest.raises(ValueError, match="base/partners: expected model names other than 'blend'"):
        create_model("blend", partners=["svd"], partner_params=[{}], weights=[1.0])
    with pytest.raises(ValueError, match="weights: expected non-negative numbers"):
        create_model("blend", weights=[-1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"weights: expected 'valid' or a list of 3 numbers"):
        create_model("blend", weights=[1.0])
    with pytest.raises(ValueError, match="expected lists of one length"):
        create_model("blend", partner_params=[{}])
    with pytest.raises(ValueError, match="weight_grid: expected a non-empty list of non-negative numbers"):
        create_model("blend", weight_grid=[])
    with pytest.raises(ValueError, match="standardise: expected 'unseen' or 'all'"):
        create_model("blend", standardise="rank")


def test_blend_chooses_its_weights_on_valid(tmp_path) -> None:
    """weights="valid": the chosen combination is the best valid NDCG@10 of the grid as the evaluation protocol
    (`evaluate_model`, valid part only) measures it, the first in grid order on a tie; the refit (params_after_probe)
    and a saved copy use it; without a validation split the fit refuses with a clear error."""
    import itertools

    from recommenders.errors import ModelFitError
    from recommenders.evaluation import evaluate_model
    from recommenders.models import load_model
    from recommenders.splits import Split

    rng = np.random.default_rng(7)
    train = checkerboard()
    seen = set(zip(train["user_id"], train["item_id"]))
    rows = [(f"u{u}", f"i{i}") for u in range(N_USERS)  # two unseen items per user, either parity: a noisy valid part
            for i in rng.choice([i for i in range(N_ITEMS) if (f"u{u}", f"i{i}") not in seen], 2, replace=False)]
    valid = pd.DataFrame(rows, columns=["user_id", "item_id"])
    split = Split("t", 0, train, valid, valid.iloc[:0])
    grid = [0.0, 1.0, 3.0]
    blend = create_model("blend", base_params=BASE, partner_params=PARTNERS_FAST, weight_grid=grid).fit(
        train, ITEMS, parity_features(), valid=valid)
    chosen = tuple(blend.weights_)
    assert blend.params_after_probe()["weights"] == list(chosen)
    blend.save(tmp_path / "blend")
    assert tuple(load_model(tmp_path / "blend").weights_) == chosen

    measured = {}  # each grid point's valid NDCG@10 through the evaluation protocol, weights set by hand
    for ws in itertools.product(grid, repeat=3):
        blend.weights_ = list(ws)
        measured[ws] = evaluate_model(blend, split, ks=(10,), parts=("valid",))["valid"]["ndcg@10"]
    blend.weights_ = list(chosen)
    best = max(measured.values())
    assert len({round(v, 6) for v in measured.values()}) > 1  # the grid points differ: the choice means something
    assert chosen == next(ws for ws in measured if measured[ws] > best - 1e-9)
    by_search = {tuple(r["weights"]): r["valid_ndcg@10"] for r in blend.weight_search}
    for ws, v in measured.items():
        assert by_search[ws] == pytest.approx(v, abs=1e-9)

    mask = np.ones(N_ITEMS, dtype=bool)
    mask[blend.seen_items(3)] = False
    z = lambda s: (s - s[mask].mean()) / s[mask].std()  # noqa: E731
    parts = [c.score(3) for c in blend.parts]
    np.testing.assert_allclose(blend.score(3), z(parts[0]) + sum(w * z(p) for w, p in zip(chosen, parts[1:])),
                               rtol=1e-6)
    with pytest.raises(ModelFitError, match="weights: 'valid' chooses the partner weights on a validation split"):
        create_model("blend", base_params=BASE, partner_params=PARTNERS_FAST).fit(train, ITEMS, parity_features())


def test_blend_refit_gives_each_partner_its_own_best_epoch() -> None:
    from tests.recommenders.test_rec_models import held_out

    valid = pd.DataFrame({"user_id": [f"u{u}" for u in range(N_USERS)],
                          "item_id": [f"i{held_out(u)}" for u in range(N_USERS)]})
    probe = create_model("blend", base_params=BASE, partner_params=[{**FR_FAST, "patience": 2},
                                                                    {**TT_FAST, "patience": 2}, LP_FAST]).fit(
        checkerboard(), ITEMS, parity_features(), valid=valid)
    after = probe.params_after_probe()["partner_params"]
    assert after[2] == LP_FAST  # a closed-form partner has no epochs to choose
    for c, params in zip(probe.parts[1:3], after):
        scored = [h for h in c.history if "valid_ndcg@10" in h]
        best = max(scored, key=lambda h: (h["valid_ndcg@10"], -h["epoch"]))
        assert params["epochs"] == best["epoch"] and params["knn" if c.name == "freedom" else "experts"]


SAS_FAST = {"dim": 8, "heads": 2, "layers": 1, "max_len": 8, "dropout": 0.2, "lr": 0.01, "batch_size": 16,
            "epochs": 60, "seed": 1}


def shuffled_in_time(frame: pd.DataFrame, seed: int = 0, repeats: int = 4) -> pd.DataFrame:
    """The checkerboard as histories: each user's items `repeats` times over, in random time order, so the
    next item is any item of the user's taste (in row order every history would be sorted, and "the item
    after the last one" never seen). The set of (user, item) positives is the checkerboard's."""
    rng = np.random.default_rng(seed)
    rows = pd.concat([frame] * repeats, ignore_index=True)
    return rows.assign(timestamp=rng.permutation(len(rows)))


class SequentialContract(ModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, request: pytest.FixtureRequest):
        return create_model(cls.name, **cls.params).fit(shuffled_in_time(checkerboard()), ITEMS, parity_features())


class TestSASRec(SequentialContract):
    name = "sasrec"
    params = SAS_FAST


class TestSASRecContent(SequentialContract):
    name = "sasrec-content"
    params = SAS_FAST


def test_content_initialised_sasrec_starts_from_the_content() -> None:
    """Before any training step the item table is the content's principal axes (ID-only: unrelated noise)."""
    from recommenders.models.sasrec import content_init

    feats = parity_features()
    untrained = {**SAS_FAST, "epochs": 0}
    content = create_model("sasrec-content", **untrained).fit(checkerboard(), ITEMS, feats)
    ids_only = create_model("sasrec", **untrained).fit(checkerboard(), ITEMS, feats)
    expected = content_init(feats, 8)
    np.testing.assert_allclose(content.module.item.detach().numpy()[:N_ITEMS], expected, rtol=1e-6)
    assert np.corrcoef(expected[:, 0], np.arange(N_ITEMS) % 2)[0, 1] ** 2 > 0.9
    got = ids_only.module.item.detach().numpy()[:N_ITEMS, 0]
    assert np.corrcoef(got, np.arange(N_ITEMS) % 2)[0, 1] ** 2 < 0.5


def test_content_initialised_sasrec_is_trained_from_the_content() -> None:
    """Fitted on the same histories, the content model's scores change with the item features; the ID-only
    model ignores them (identical scores bit for bit)."""
    data = shuffled_in_time(checkerboard())
    feats = parity_features()
    other = {"text": np.random.default_rng(9).normal(size=feats["text"].shape).astype(np.float32)}
    short = {**SAS_FAST, "epochs": 5}
    ids_a = create_model("sasrec", **short).fit(data, ITEMS, feats)
    ids_b = create_model("sasrec", **short).fit(data, ITEMS, other)
    np.testing.assert_array_equal(ids_a.score(0), ids_b.score(0))
    con_a = create_model("sasrec-content", **short).fit(data, ITEMS, feats)
    con_b = create_model("sasrec-content", **short).fit(data, ITEMS, other)
    assert np.abs(con_a.score(0) - con_b.score(0)).max() > 1e-3
    with pytest.raises(Exception, match=r"features\['text'\] is required"):
        create_model("sasrec-content", **short).fit(data, ITEMS)


def test_sasrec_reads_histories_in_time_order() -> None:
    """The next item after a history depends on its order; with_history appends time-ordered rows."""
    rows = []
    for u in range(12):  # everyone walks the cycle i0 -> i1 -> ... -> i5 -> i0 ..., starting somewhere
        for t in range(10):
            rows.append((f"u{u}", f"i{(u + t) % 6}", t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sample(frac=1.0, random_state=0)
    items = [f"i{i}" for i in range(6)]
    model = create_model("sasrec", **{**SAS_FAST, "epochs": 150}).fit(frame, items)
    for start in range(6):
        picks = [f"i{(start + t) % 6}" for t in range(3)]
        ids, _ = model.recommend_from_items(picks, k=1, exclude_seen=False)
        assert ids == [f"i{(start + 3) % 6}"], (picks, ids)
    extra = pd.DataFrame({"user_id": ["u0"], "item_id": ["i4"], "timestamp": [99]})
    extended = model.with_history(extra)
    np.testing.assert_allclose(extended.score(model.user_index("u0")),
                               model._fold_in(np.r_[model.sequences[model.user_index("u0")], 4]))
    u0 = model.user_index("u0")
    assert len(extended.sequences[u0]) == len(model.sequences[u0]) + 1 and model.sequences is not extended.sequences


def test_served_blend_uses_the_weights_its_probe_chose_on_valid() -> None:
    """train_model (the app's path): the probe on a 9:1 hold-out chooses the weights, the refit on all data keeps them."""
    from recommenders.data import Dataset
    from recommenders.splits import random_split
    from recommenders.training import merge_interactions, train_model

    inter = checkerboard()
    items = pd.DataFrame({"item_id": ITEMS, "title": ITEMS, "text": ITEMS, "genres": [[] for _ in ITEMS],
                          "year": pd.array([None] * N_ITEMS, dtype="Int64"), "image": [None] * N_ITEMS})
    ds = Dataset("checkerboard", items, pd.DataFrame({"user_id": pd.unique(inter["user_id"])}), inter)
    params = dict(base_params=BASE, partner_params=PARTNERS_FAST, weight_grid=[0.0, 1.0, 3.0])
    served = train_model(ds, "blend", features=parity_features(), seed=5, **params)
    split = random_split(merge_interactions(ds), seed=5, ratios=(0.9, 0.1, 0.0))
    probe = create_model("blend", **params, seed=5).fit(split.train, ITEMS, parity_features(),
                                                         valid=split.valid[split.valid["weight"] > 0])
    assert served.params["weights"] == probe.weights_ == served.weights_
    assert len(served.history) and "valid_ndcg@10" not in served.history[-1]  # the refit had no hold-out


def test_blend_saved_before_issue_27_loads_as_it_scored(tmp_path) -> None:
    """A blend saved before the weights were chosen in fit (no weights array, no standardise/weight_grid in its
    params) loads with its fixed weights and the whole-catalogue z it was fitted with."""
    import json

    from recommenders.models import load_model

    kw = dict(base_params=BASE, partners=["two-tower"], partner_params=[TT_FAST], weights=[0.5])
    new = create_model("blend", **kw, standardise="all").fit(checkerboard(), ITEMS, parity_features())
    new.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "params.json").read_text())
    for key in ("standardise", "weight_grid"):
        del meta["params"][key]
    (tmp_path / "m" / "params.json").write_text(json.dumps(meta))
    with np.load(tmp_path / "m" / "arrays.npz") as arrays:
        kept = {k: arrays[k] for k in arrays.files if k != "state__weights"}
    np.savez(tmp_path / "m" / "arrays.npz", **kept)
    old = load_model(tmp_path / "m")
    assert old.weights_ == [0.5] and old.params["standardise"] == "all"
    np.testing.assert_allclose(old.score(3), new.score(3))
