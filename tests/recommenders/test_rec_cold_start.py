"""Item cold start (issue 27): the two-tower's validation as served, and the default model of the cold-item split."""

from __future__ import annotations

import pytest

from recommenders.models import create_model
from tests.recommenders.test_rec_models import FAST_SGD, ITEMS, N_ITEMS, checkerboard, parity_features


def test_cold_validation_ranks_only_the_cold_items_by_content() -> None:
    """valid_items="cold": early stopping scores the items without a training positive, as they are served
    (content alone), and nothing else."""
    import pandas as pd
    import torch

    from recommenders.models import two_tower

    data = checkerboard()
    cold = data["item_id"].isin(["i10", "i11"])
    train, valid = data[~cold], data[cold]
    captured = {}
    original = two_tower.train_epochs

    def spy(module, *args, **kwargs):
        original(module, *args, **kwargs)
        captured["module"] = module

    two_tower.train_epochs = spy
    try:
        model = create_model("two-tower", **{**FAST_SGD, "batch_size": 32, "epochs": 5}, dim=8, experts=2,
                             valid_items="cold").fit(train, ITEMS, parity_features(), valid=valid)
    finally:
        two_tower.train_epochs = original
    m = captured["module"]
    with torch.no_grad():
        scores = m.full_scores(torch.arange(4))
        cold_idx = [ITEMS.index("i10"), ITEMS.index("i11")]
        assert torch.isinf(scores[:, [i for i in range(N_ITEMS) if i not in cold_idx]]).all()
        content_only, _, _ = m.item_vectors(torch.tensor(cold_idx), id_mask=torch.zeros(2))
        expected = m.user_vectors(torch.arange(4)) @ content_only.T / m.tau
        torch.testing.assert_close(scores[:, cold_idx], expected)
    assert all("valid_ndcg@10" in h for h in model.history)
    with pytest.raises(ValueError, match="valid_items: 'cold' ranks the items without a training positive"):
        create_model("two-tower", **FAST_SGD, valid_items="cold").fit(
            train, ITEMS, parity_features(), valid=pd.concat([train.iloc[:3]]))
    with pytest.raises(ValueError, match="valid_items: expected 'all' or 'cold', got 'warm'"):
        create_model("two-tower", **FAST_SGD, valid_items="warm").fit(train, ITEMS, parity_features())
