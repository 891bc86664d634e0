"""recommenders.visit: learning within a visit from what the visitor passed over (the model contract's
`test_skipped_items_count_within_a_visit` checks the blend on every model; here: the arithmetic and the behaviour).

The world: group A likes a0..a9, group B likes b0..b9, and both like the hub item h. A visitor who liked h is
equally close to both groups; once they pass over A's items, B's come first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommenders.errors import UnknownItemError
from recommenders.models import create_model, load_model
from recommenders.models.base import OffsetSparseScores, SparseScores, topk_indices
from recommenders.visit import DEFAULT_VISIT, VisitIndex, VisitLearning, blend_scores

A = [f"a{i}" for i in range(10)]
B = [f"b{i}" for i in range(10)]
ITEMS = ["h", *A, *B]


def groups() -> pd.DataFrame:
    rows = [(f"A{u}", i) for u in range(6) for i in ["h", *A[u % 3::3][:3], *A[:2]]]
    rows += [(f"B{u}", i) for u in range(6) for i in ["h", *B[u % 3::3][:3], *B[:2]]]
    return pd.DataFrame(rows, columns=["user_id", "item_id"]).drop_duplicates()


@pytest.fixture(scope="module", params=["ease", "sparse-ease", "itemknn"])
def model(request):
    return create_model(request.param).fit(groups(), ITEMS)


def group_of(ids: list[str]) -> str:
    return "".join(i[0] for i in ids)


def test_passing_over_one_group_brings_the_other_first(model):
    shown = A[2:5]  # the first page showed three of A's items; the visitor took none
    plain, _ = model.recommend_with_feedback(None, liked=["h"], k=2, exclude=shown)
    assert group_of(plain) == "aa"  # fold-in alone: A and B tie, and A's items come first on the index
    ids, _ = model.recommend_with_feedback(None, liked=["h"], k=2, exclude=shown, skipped=shown)
    assert group_of(ids) == "bb", ids
    ids, _ = model.recommend_with_feedback(None, liked=["h"], k=2, exclude=B[2:5], skipped=B[2:5])
    assert group_of(ids) == "aa"  # and symmetrically


def test_a_dislike_weighs_more_than_a_skip():
    index = create_model("ease").fit(groups(), ITEMS).visit_index()
    h, a0 = np.array([0]), np.array([1])
    none = np.empty(0, np.int64)
    sim_skip = index.similarity(h, none, a0)
    sim_dislike = index.similarity(h, a0, none)
    a_users = slice(0, 6)  # the A users come first (fit order)
    np.testing.assert_allclose(sim_skip[a_users], 1 - DEFAULT_VISIT.skip_weight)
    np.testing.assert_allclose(sim_dislike[a_users], 1 - DEFAULT_VISIT.dislike_weight)
    np.testing.assert_allclose(sim_skip[6:], 1.0)


def test_similarity_and_votes_by_hand():
    # users x items: u0 {0, 1}, u1 {0, 2, 3}, u2 {2}, u3 {1, 3}
    pos = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 1, 0], [0, 1, 0, 1]], dtype=np.float32))
    index = VisitIndex(pos)
    visit = VisitLearning(skip_weight=0.5, dislike_weight=1.0, neighbours=2)
    sim = index.similarity(np.array([0, 3]), np.array([2]), np.array([1]), visit)
    np.testing.assert_allclose(sim, [1 - 0.5, 2 - 1.0, -1.0, 1 - 0.5])
    votes = index.neighbour_scores(np.array([0, 3]), np.array([2]), np.array([1]), visit)
    # neighbours: u1 (1.0) and u0 (0.5; u3 ties at 0.5 and loses on the index); u2 is below zero and never votes
    np.testing.assert_allclose(votes.dense(), [1.5, 0.5, 1.0, 1.0])
    powered = index.similarity(np.array([0, 3]), np.empty(0, np.int64), np.empty(0, np.int64),
                               VisitLearning(degree_power=1.0))
    np.testing.assert_allclose(powered, [1 / 2, 2 / 3, 0.0, 1 / 2])
    nobody = index.neighbour_scores(np.array([0]), np.empty(0, np.int64), np.array([1, 2, 3]),
                                    VisitLearning(skip_weight=2.0))
    assert len(nobody.indices) == 0  # nobody is closer than nothing: no votes


def test_offset_sparse_scores_rank_as_their_dense_vector():
    rng = np.random.default_rng(0)
    n = 40
    for _ in range(100):
        a = SparseScores(n, rng.choice(n, 8, replace=False), rng.normal(size=8))
        b = SparseScores(n, rng.choice(n, 5, replace=False), rng.random(5))
        mix = float(rng.random())
        sparse, dense = blend_scores(a, b, mix), blend_scores(a.dense(), b, mix)
        assert isinstance(sparse, OffsetSparseScores) and isinstance(dense, np.ndarray)
        np.testing.assert_allclose(sparse.dense(), dense, atol=1e-12)
        exclude = rng.choice(n, 6, replace=False)
        top, values = sparse.top(10, exclude)
        masked = dense.copy()
        masked[exclude] = -np.inf
        np.testing.assert_allclose(values, masked[topk_indices(masked, 10)], atol=1e-12)
        np.testing.assert_allclose(masked[top], values, atol=1e-12)
    # z over the whole catalogue: the blended scores have mean 0; a constant component adds nothing
    z = blend_scores(np.arange(5.0), SparseScores(5, np.array([], np.int64), np.array([])), 0.5)
    np.testing.assert_allclose(z, 0.5 * (np.arange(5.0) - 2) / np.arange(5.0).std())
    inf = blend_scores(np.array([1.0, -np.inf, 3.0]), SparseScores(3, np.array([0]), np.array([1.0])), 0.5)
    assert inf[1] == -np.inf and np.isfinite(inf[[0, 2]]).all()  # an item the model never ranks stays out


def test_a_sparse_model_stays_sparse(monkeypatch):
    model = create_model("sparse-ease").fit(groups(), ITEMS)
    seen = []
    rank = model._rank
    monkeypatch.setattr(model, "_rank", lambda scores, k, exclude: seen.append(scores) or rank(scores, k, exclude))
    model.recommend_with_feedback(None, liked=["h"], k=3, skipped=A[:2])
    assert isinstance(seen[-1], OffsetSparseScores)


def test_skips_of_a_fitted_user_and_a_saved_model(tmp_path):
    model = create_model("ease").fit(groups(), ITEMS)
    assert model.recommend_with_feedback("A0", k=3, skipped=[])[0] == model.recommend("A0", 3)[0]
    ids, _ = model.recommend_with_feedback("A0", k=3, skipped=A[2:6])  # their history is the liked side
    assert ids != model.recommend("A0", 3)[0]
    loaded = load_model(model.save(tmp_path / "m"))
    again, _ = loaded.recommend_with_feedback("A0", k=3, skipped=A[2:6])
    assert again == ids
    index = model.visit_index()
    assert model.visit_index() is index  # built once
    model.fit(groups().iloc[:-3], ITEMS)
    assert model.visit_index() is not index  # and again after a fit


def test_bad_input():
    model = create_model("ease").fit(groups(), ITEMS)
    with pytest.raises(ValueError, match="skipped: expected a sequence of item ids, got the string"):
        model.recommend_with_feedback(None, liked=["h"], skipped="a0")
    with pytest.raises(UnknownItemError, match="item_id: expected an item of the catalogue"):
        model.recommend_with_feedback(None, liked=["h"], skipped=["nope"])
    for bad in (dict(mix=1.5), dict(mix=-0.1), dict(neighbours=0), dict(neighbours=2.5), dict(neighbours=True),
                dict(skip_weight=-1.0), dict(dislike_weight=float("nan")), dict(degree_power=float("inf"))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            VisitLearning(**bad)
