"""Metric values against hand-computed numbers (RecBole 1.2.1 definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommenders import metrics

# user 0: hits at ranks 1 and 3 of 4, 3 test positives; user 1: hit at rank 2, 1 positive; user 2: no hit
HITS = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
N_POS = np.array([3, 1, 2])
L = math.log2


def test_recall_precision_hit() -> None:
    assert metrics.recall(HITS, N_POS, 3).tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert metrics.recall(HITS, N_POS, 1).tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    assert metrics.precision(HITS, N_POS, 4).tolist() == pytest.approx([0.5, 0.25, 0.0])
    assert metrics.hit(HITS, N_POS, 1).tolist() == [1.0, 0.0, 0.0]
    assert metrics.hit(HITS, N_POS, 2).tolist() == [1.0, 1.0, 0.0]


def test_mrr() -> None:
    assert metrics.mrr(HITS, N_POS, 4).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert metrics.mrr(HITS, N_POS, 1).tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_ndcg_hand_computed() -> None:
    # user 0 @4: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(3, 4) = 3 positions
    idcg0 = 1 + 1 / L(3) + 1 / L(4)
    # user 1 @4: DCG = 1/log2(3); IDCG = 1 (one positive)
    expected = [1.5 / idcg0, 1 / L(3), 0.0]
    assert metrics.ndcg(HITS, N_POS, 4).tolist() == pytest.approx(expected)
    # @2: user 0 DCG = 1, IDCG = 1 + 1/log2(3) (min(3, 2) = 2 positions)
    assert metrics.ndcg(HITS, N_POS, 2)[0] == pytest.approx(1 / (1 + 1 / L(3)))


def test_evaluate_topk_averages_over_users() -> None:
    out = metrics.evaluate_topk(HITS, N_POS, ks=(2, 4))
    assert out["recall@4"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert out["hit@2"] == pytest.approx(2 / 3)
    assert set(out) == {f"{m}@{k}" for m in metrics.ACCURACY for k in (2, 4)}


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="k: expected 1..4"):
        metrics.recall(HITS, N_POS, 5)
    with pytest.raises(ValueError, match="n_pos"):
        metrics.ndcg(HITS, np.array([1, 0, 1]), 2)


def test_beyond_accuracy() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert metrics.item_coverage(top, 10) == pytest.approx(0.3)
    pop = np.array([4, 2, 1, 0])  # item popularity over 4 users
    # -log2(p): item0 0, item1 1, item2 2 -> mean over (0, 1, 1, 2)
    assert metrics.novelty(top, pop, 4) == pytest.approx(1.0)
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])  # item 1 and 2 point the same way
    # list 0: cos(0,1) = 0 -> distance 1 ; list 1: cos(1,2) = 1 -> distance 0
    assert metrics.intra_list_diversity(top, emb) == pytest.approx(0.5)
    # -1 pads a short list; a list of one item has no pair and is skipped
    assert metrics.intra_list_diversity(np.array([[0, 1, -1], [2, -1, -1]]), emb) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="K>=2"):
        metrics.intra_list_diversity(np.array([[0], [1]]), emb)
