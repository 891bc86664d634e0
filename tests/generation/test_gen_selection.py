"""Informative pairs first (generation.selection) and reliability weights in the reward model's records."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from generation.errors import GenerationError
from generation.reward import HashingEncoder, RewardModel, records_from_frames
from generation.selection import pair_margins, priorities_from_order, rank_pairs
from reward_helpers import STYLES, make_world


@pytest.fixture(scope="module")
def fitted():
    pairs, users, candidates = make_world(n_pairs=300, noise=0.1, seed=1)
    model = RewardModel(HashingEncoder(64)).fit(pairs, users, candidates)
    return model, users, candidates


def _triples(users, candidates, n=60):
    ids = sorted(candidates)
    uids = sorted(users)
    return [(users[uids[i % len(uids)]], candidates[ids[2 * i]], candidates[ids[2 * i + 1]]) for i in range(n)]


def test_margins_match_the_models_scores(fitted):
    model, users, candidates = fitted
    triples = _triples(users, candidates, 20)
    margins = pair_margins(model, triples)
    for (user, a, b), m in zip(triples, margins):
        sa, sb = model.score(user, [a, b])
        assert m == pytest.approx(sa - sb, abs=1e-9)
    # a and b swapped: the margin changes sign
    assert pair_margins(model, [(u, b, a) for u, a, b in triples]) == pytest.approx(-margins)


def test_the_least_certain_pairs_come_first(fitted):
    model, users, candidates = fitted
    triples = _triples(users, candidates)
    margins = np.abs(pair_margins(model, triples))
    order = rank_pairs(model, triples, batch=len(triples), max_similarity=None)  # no diversity term
    assert sorted(order) == list(range(len(triples)))
    assert np.all(np.diff(margins[order]) >= 0)
    assert rank_pairs(model, triples, batch=10) == rank_pairs(model, triples, batch=10)  # deterministic


def test_a_near_copy_waits_for_the_next_batch(fitted):
    """The same user and the same two styles twice: the second copy of the most uncertain pair is deferred."""
    model, users, candidates = fitted
    triples = _triples(users, candidates, 30)
    first = rank_pairs(model, triples, batch=5, max_similarity=None)[0]
    copies = triples + [triples[first], (triples[first][0], triples[first][2], triples[first][1])]
    order = rank_pairs(model, copies, batch=5)
    batch = order[:5]
    assert first in batch and len(triples) not in batch and len(triples) + 1 not in batch
    assert set(order[5:7]) == {len(triples), len(triples) + 1}  # deferred, right after the batch
    plain = rank_pairs(model, copies, batch=5, max_similarity=None)
    assert {len(triples), len(triples) + 1} <= set(plain[:5])  # without the term they crowd the batch


def test_bad_input(fitted):
    model, users, candidates = fitted
    triples = _triples(users, candidates, 3)
    assert rank_pairs(model, []) == []
    with pytest.raises(GenerationError, match="batch"):
        rank_pairs(model, triples, batch=0)
    with pytest.raises(GenerationError, match="max_similarity"):
        rank_pairs(model, triples, max_similarity=0.0)
    with pytest.raises(GenerationError, match="pairs\\[0\\]"):
        rank_pairs(model, [("u", triples[0][1], triples[0][2])])
    with pytest.raises(GenerationError, match="fitted"):
        rank_pairs(RewardModel(HashingEncoder(8)), triples)
    assert priorities_from_order([2, 0, 1]) == {2: 3.0, 0: 2.0, 1: 1.0}


def _frames():
    assets = pd.DataFrame({
        "asset_id": [1, 2, 3, 4], "kind": ["cover"] * 4, "prompt": ["p1", "p2", "p3", "p4"],
        "params": [{"keywords": list(STYLES["neon"]), "alpha": 0.5}] * 4, "generator": ["g"] * 4,
        "text": [None] * 4, "path": [None] * 4, "item_id": ["1", "1", "2", "2"],
    })
    at = dt.datetime(2026, 12, 1)
    prefs = pd.DataFrame({
        "kind": ["cover"] * 4, "target_user_id": ["u"] * 4, "asset_a_id": [1, 1, 3, 3], "asset_b_id": [2, 2, 4, 4],
        "choice": ["A", "B", "A", "B"], "created_at": [at] * 4, "annotator": ["good", "bad", "good", "new"],
    })
    return prefs, assets


def test_records_carry_reliability_weights_scaled_to_a_mean_of_one():
    prefs, assets = _frames()
    plain, _ = records_from_frames(prefs, assets)
    assert [p.weight for p in plain] == [1.0] * 4
    weighted, _ = records_from_frames(prefs, assets, annotator_weights={"good": 0.8, "bad": 0.0})
    # "bad" (weight 0) is left out; "new" (not in the weights) weighs 1; the mean is 1
    assert [p.winner for p in weighted] == ["1", "3", "4"]
    assert [p.weight for p in weighted] == pytest.approx([0.8 / (2.6 / 3), 0.8 / (2.6 / 3), 1.0 / (2.6 / 3)])
    with pytest.raises(GenerationError, match="annotator_weights"):
        records_from_frames(prefs, assets, annotator_weights={"good": -1.0})
