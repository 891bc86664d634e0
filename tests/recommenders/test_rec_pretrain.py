"""Issue 16 models (two-tower, freedom, sasrec, blend) on the shared contract, plus what each one claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommenders.models import create_model
from tests.recommenders.test_rec_models import (
    FAST_SGD,
    ITEMS,
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


class TestBlend(ModelContract):
    name = "blend"
    params = {"base_params": {"reg": 1.0, "text_weight": 0.5}, "partner_params": TT_FAST, "weight": 0.5}


def test_blend_is_the_weighted_sum_of_standardised_component_scores() -> None:
    feats = parity_features()
    blend = create_model("blend", base_params={"reg": 1.0, "text_weight": 0.5}, partner_params=TT_FAST,
                         weight=0.5).fit(checkerboard(), ITEMS, feats)
    base = create_model("ease-text", reg=1.0, text_weight=0.5).fit(checkerboard(), ITEMS, feats)
    partner = create_model("two-tower", **TT_FAST).fit(checkerboard(), ITEMS, feats)
    z = lambda s: (s - s.mean()) / s.std()  # noqa: E731
    for u in (0, 5):
        np.testing.assert_allclose(blend.score(u), z(base.score(u)) + 0.5 * z(partner.score(u)), rtol=1e-6)
    zero = create_model("blend", base_params={"reg": 1.0, "text_weight": 0.5}, partner_params=TT_FAST,
                        weight=0.0).fit(checkerboard(), ITEMS, feats)
    assert zero.recommend("u3", 5)[0] == base.recommend("u3", 5)[0]  # weight 0 is the base model
    with pytest.raises(ValueError, match="partner: expected one of"):
        create_model("blend", partner="svd")
    with pytest.raises(ValueError, match="weight: expected a non-negative number"):
        create_model("blend", weight=-1.0).fit(checkerboard(), ITEMS, feats)
