"""recommenders.ips: examination estimated from randomised slates; IPS/SNIPS of a second ranker vs its true like rate.

A synthetic position-based world with a known truth: r(u, i) = 0.5 when the user-item affinity is high, else
0.02; theta[k] = k ** -0.8. The logger ranks by a noisy affinity and explores (epsilon 0.3 over its top 30);
the candidate ranks by a less noisy one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommenders.ips import estimate_examination, explore_propensities, ips_like_rate, power_law

K, N_ITEMS, TOP, EPS, ETA = 8, 60, 30, 0.3, 0.8


def world(n_contexts: int, epsilon: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    users, items = rng.normal(size=(n_contexts, 3)), rng.normal(size=(N_ITEMS, 3))
    affinity = users @ items.T
    relevance = np.where(affinity > 1.0, 0.5, 0.02)
    theta = power_law(K, ETA)
    logged, props, cand, explored = [], [], [], []
    truth = 0.0
    for n in range(n_contexts):
        log_rank = np.argsort(-(affinity[n] + rng.normal(0, 1.0, N_ITEMS)), kind="stable")
        cand_rank = np.argsort(-(affinity[n] + rng.normal(0, 0.3, N_ITEMS)), kind="stable")[:K]
        explore = rng.random() < epsilon
        slate = rng.permutation(log_rank[:TOP])[:K] if explore else log_rank[:K]
        liked = rng.random(K) < theta * relevance[n, slate]
        logged += [(n, int(i), k, int(y)) for k, (i, y) in enumerate(zip(slate, liked))]
        p = explore_propensities(log_rank, K, epsilon, TOP)
        props += [(n, int(log_rank[r]), k, p[r, k]) for r in range(TOP) for k in range(K) if p[r, k] > 0]
        cand += [(n, int(i), k) for k, i in enumerate(cand_rank)]
        if explore:
            explored += [(k, int(y)) for k, y in enumerate(liked)]
        truth += float((theta * relevance[n, cand_rank]).sum()) / K
    frames = (pd.DataFrame(logged, columns=["slate", "item_id", "position", "liked"]),
              pd.DataFrame(props, columns=["slate", "item_id", "position", "prob"]),
              pd.DataFrame(cand, columns=["slate", "item_id", "position"]))
    return frames, np.array(explored), truth / n_contexts


@pytest.fixture(scope="module")
def logs():
    return world(3000, EPS)


def test_examination_is_estimated_from_the_randomised_slates(logs):
    _, explored, _ = logs
    exam = estimate_examination(explored[:, 0], explored[:, 1], K)
    assert abs(exam.eta - ETA) < 0.25  # the stated error of the shape fit on ~900 randomised slates
    assert exam.theta[0] == 1.0 and np.all(np.diff(exam.theta) < 0)
    with pytest.raises(ValueError, match="positions"):
        estimate_examination(np.array([0, K]), np.array([1, 0]), K)


def test_ips_and_snips_of_a_second_ranker_are_within_15_percent_of_its_truth(logs):
    (logged, props, cand), explored, truth = logs
    exam = estimate_examination(explored[:, 0], explored[:, 1], K)
    est = ips_like_rate(logged, props, cand, exam.theta, n_boot=300)
    assert est.support > 0.9
    assert abs(est.snips - truth) < 0.15 * truth, (est, truth)
    assert abs(est.ips - truth) < 0.15 * truth, (est, truth)
    assert est.snips_ci[0] < truth < est.snips_ci[1]
    # the naive estimate (the logger's own like rate) is far off: the candidate is better
    assert logged["liked"].mean() < 0.8 * truth


def test_a_deterministic_logger_misses_what_it_never_shows():
    (logged, props, cand), _, truth = world(1500, 0.0, seed=1)
    est = ips_like_rate(logged, props, cand, power_law(K, ETA), n_boot=100)
    assert est.support < 0.9 and est.ips < truth  # no exploration: unsupported items count as never liked


def test_bad_input():
    logged = pd.DataFrame({"slate": [0], "item_id": [1], "position": [0], "liked": [1]})
    props = pd.DataFrame({"slate": [0], "item_id": [2], "position": [0], "prob": [1.0]})
    cand = pd.DataFrame({"slate": [0], "item_id": [1], "position": [0]})
    with pytest.raises(ValueError, match="every shown item needs its logging probability"):
        ips_like_rate(logged, props, cand, np.ones(1))
    with pytest.raises(ValueError, match="missing column"):
        ips_like_rate(logged.drop(columns="liked"), props, cand, np.ones(1))
    with pytest.raises(ValueError, match="epsilon"):
        explore_propensities(np.arange(10), 3, 1.5, 5)
