"""Team-draft interleaving: the properties of Radlinski et al. (2008), seeded."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.serving.interleaving import TIE, InterleavedSlate, team_draft


A = ["a1", "a2", "a3", "a4", "a5"]
B = ["b1", "b2", "b3", "b4", "b5"]


def test_same_seed_same_slate_and_seeds_differ():
    first = team_draft(A, B, k=6, names=("ease", "pop"), seed=7)
    again = team_draft(A, B, k=6, names=("ease", "pop"), seed=7)
    assert first == again
    slates = {tuple(team_draft(A, B, k=6, seed=s).contributors) for s in range(20)}
    assert len(slates) > 1, "the coin flip must depend on the seed"


def test_each_team_contributes_its_items_in_rank_order_and_balanced():
    for seed in range(30):
        slate = team_draft(A, B, k=6, names=("x", "y"), seed=seed)
        assert len(slate) == 6
        from_x = [i for i, c in zip(slate.item_ids, slate.contributors) if c == "x"]
        from_y = [i for i, c in zip(slate.item_ids, slate.contributors) if c == "y"]
        assert from_x == A[: len(from_x)]
        assert from_y == B[: len(from_y)]
        # after every prefix the two teams differ by at most one pick
        for n in range(1, len(slate) + 1):
            counts = Counter(slate.contributors[:n])
            assert abs(counts["x"] - counts["y"]) <= 1


def test_shared_items_appear_once_and_go_to_whoever_picks_first():
    a = ["s", "a", "t"]
    b = ["s", "t", "b"]
    slate = team_draft(a, b, k=4, names=("A", "B"), seed=3)
    assert len(set(slate.item_ids)) == len(slate.item_ids) == 4
    assert slate.item_ids[0] == "s"  # both rank it first: the first picker takes it
    assert set(slate.item_ids) == {"s", "a", "t", "b"}


def test_first_pick_is_a_fair_coin():
    first = Counter(team_draft(A, B, k=1, seed=s).contributors[0] for s in range(2000))
    assert 900 < first["A"] < 1100


def test_one_ranking_runs_out_the_other_continues():
    slate = team_draft(["a1"], B, k=4, seed=0)
    assert slate.item_ids.count("a1") == 1
    assert len(slate) == 4
    assert slate.contributors.count("A") == 1
    # both exhausted: the slate is the union
    small = team_draft(["x"], ["x", "y"], k=10, seed=0)
    assert sorted(small.item_ids) == ["x", "y"]


def test_external_rng_is_used_and_advances():
    rng = random.Random(11)
    first = team_draft(A, B, k=5, rng=rng)
    second = team_draft(A, B, k=5, rng=rng)
    assert first.seed is None
    replay = random.Random(11)
    assert team_draft(A, B, k=5, rng=replay) == first
    assert team_draft(A, B, k=5, rng=replay) == second


def test_credit_and_winner():
    slate = InterleavedSlate(item_ids=["a1", "b1", "a2", "b2"], contributors=["m", "n", "m", "n"],
                             names=("m", "n"), seed=0)
    assert slate.credit(["a1", "a2", "b1"]) == {"m": 2, "n": 1}
    assert slate.winner(["a1", "a2", "b1"]) == "m"
    assert slate.winner(["b2"]) == "n"
    assert slate.winner([]) == TIE
    assert slate.winner(["a1", "b1"]) == TIE
    assert slate.credit(["a1", "a1"]) == {"m": 1, "n": 0}, "a repeated click counts once"
    with pytest.raises(KeyError, match="zz"):
        slate.credit(["zz"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ranking_a=A, ranking_b=B, k=0), "k must be a positive integer"),
        (dict(ranking_a=A, ranking_b=B, k=2.5), "k must be a positive integer"),
        (dict(ranking_a=["a", "a"], ranking_b=B, k=2), "ranking_a must not repeat"),
        (dict(ranking_a=A, ranking_b="abc", k=2), "ranking_b must be a sequence"),
        (dict(ranking_a=A, ranking_b=B, k=2, names=("m", "m")), "names must be two distinct"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        team_draft(**kwargs)
