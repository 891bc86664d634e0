"""Split invariants: disjoint parts, nothing lost, RecBole's per-user counts, seeded, no cold-item leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommenders.splits import cold_item_split, loo_split, make_split, random_split, split_counts


@pytest.fixture(scope="module")
def inter() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        n = int(rng.integers(1, 30)) if u else 1  # user 0 has a single interaction
        for i in rng.choice(60, size=n, replace=False):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), int(rng.integers(0, 10_000))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["item_id"]))


def test_recbole_split_counts() -> None:
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(25, (0.8, 0.1, 0.1)) == [21, 2, 2]
    assert split_counts(5, (0.8, 0.1, 0.1)) == [3, 1, 1]  # a part below one row gets one while train keeps >1
    assert split_counts(2, (0.8, 0.1, 0.1)) == [1, 0, 1]
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]


@pytest.mark.parametrize("name", ["random", "loo", "cold-item"])
def test_parts_are_disjoint_and_complete(inter: pd.DataFrame, name: str) -> None:
    s = make_split(inter, name, seed=7)
    parts = [_keys(s.train), _keys(s.valid), _keys(s.test)]
    assert sum(len(p) for p in parts) == len(inter)  # nothing lost or duplicated
    assert set.union(*parts) == _keys(inter)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    again = make_split(inter, name, seed=7)
    pd.testing.assert_frame_equal(s.test, again.test)
    if name != "loo":  # loo is fixed by the timestamps; its seed only breaks timestamp ties
        assert not make_split(inter, name, seed=8).test.equals(s.test)


def test_random_split_per_user_counts(inter: pd.DataFrame) -> None:
    s = random_split(inter, seed=2020)
    for user, group in inter.groupby("user_id"):
        expected = split_counts(len(group), (0.8, 0.1, 0.1))
        got = [int((part["user_id"] == user).sum()) for part in (s.train, s.valid, s.test)]
        assert got == expected, user
    # every user with >= 10 interactions is in all three parts
    big = inter.groupby("user_id").size().loc[lambda n: n >= 10].index
    for part in (s.train, s.valid, s.test):
        assert set(big) <= set(part["user_id"])


def test_loo_holds_out_the_latest(inter: pd.DataFrame) -> None:
    s = loo_split(inter, seed=1)
    for user, group in inter.groupby("user_id"):
        test = s.test[s.test["user_id"] == user]
        if len(group) >= 2:
            assert len(test) == 1 and test["timestamp"].iloc[0] == group["timestamp"].max()
            assert s.train[s.train["user_id"] == user]["timestamp"].max() <= test["timestamp"].iloc[0]
        else:
            assert len(test) == 0 and (s.train["user_id"] == user).sum() == 1
        if len(group) >= 3:
            valid = s.valid[s.valid["user_id"] == user]
            assert len(valid) == 1 and valid["timestamp"].iloc[0] <= test["timestamp"].iloc[0]


def test_cold_item_split_holds_out_items(inter: pd.DataFrame) -> None:
    s = cold_item_split(inter, seed=3)
    n_items = inter["item_id"].nunique()
    assert 0.1 * n_items <= len(s.cold_items) <= 0.2 * n_items
    assert not set(s.train["item_id"]) & set(s.cold_items)  # train never sees a held-out item
    assert set(s.valid["item_id"]) | set(s.test["item_id"]) <= set(s.cold_items)
    assert len(s.valid) + len(s.test) == int(inter["item_id"].isin(s.cold_items).sum())
    with pytest.raises(ValueError, match="fraction: expected a value between 0.1 and 0.2, got 0.5"):
        cold_item_split(inter, fraction=0.5)


def test_unknown_split_name(inter: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="split: expected one of"):
        make_split(inter, "temporal")
