"""Seeded train/valid/test splits of an interactions frame.

- `random_split`: RecBole's `RS [0.8, 0.1, 0.1]`, order `RO`, `group_by user`. RecBole shuffles the whole
  interaction table with `torch.randperm` right after `init_seed(seed)`, groups rows by user in order of
  first appearance and cuts each user's rows with `_calcu_split_ids` (valid/test rounded down, train takes
  the rest; a part whose share is below one row gets one row while train keeps more than one). We do the
  same, with the same permutation, so on the same file and seed the split is RecBole's own.
- `loo_split`: time-ordered leave-one-out: per user the latest interaction is test, the one before valid
  (users with fewer than 3 interactions keep what they have in train first, as RecBole's `LS` does).
- `cold_item_split`: 10-20% of items held out with all their interactions; their interactions are split
  half/half between valid and test by user-independent random draw; train never sees them.
- `given_split`: the source's own split (an MMRec folder's x_label: 0 train, 1 valid, 2 test), kept as is, with
  MMRec's protocol: the test ranking excludes the user's train items only (MMRec's EvalDataLoader masks the
  train set for valid and test alike), so our numbers sit next to MMRec's published tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recommenders.errors import DatasetError

SPLITS = ("random", "loo", "cold-item", "given")


@dataclass(frozen=True)
class Split:
    """Three disjoint interaction frames; `cold_items` lists the held-out items of a cold-start split."""

    name: str
    seed: int
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    cold_items: tuple[str, ...] = field(default=())
    # False: the test ranking excludes train items only (MMRec's protocol), not train + valid (RecBole's)
    test_excludes_valid: bool = True

    def __repr__(self) -> str:
        return (f"Split({self.name!r}, seed={self.seed}, train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)}, cold_items={len(self.cold_items)})")


def _check(interactions: pd.DataFrame) -> None:
    missing = [c for c in ("user_id", "item_id") if c not in interactions.columns]
    if missing:
        raise DatasetError(f"interactions: missing column(s) {missing}; got {list(interactions.columns)}")
    if interactions.empty:
        raise DatasetError("interactions: expected at least one row, got an empty frame")


def split_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole's `_calcu_split_ids`, returned as part sizes: later parts rounded down, the first takes the rest."""
    s = float(sum(ratios))
    ratios = tuple(r / s for r in ratios)
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def random_split(interactions: pd.DataFrame, seed: int = 2020, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
                 ) -> Split:
    """RecBole-compatible random 8:1:1 per user (see the module docstring)."""
    import torch

    _check(interactions)
    gen = torch.Generator().manual_seed(int(seed))
    # RecBole: torch.manual_seed(seed) then torch.randperm(n) on the default generator; a private generator
    # seeded the same way yields the same permutation without touching global state.
    perm = torch.randperm(len(interactions), generator=gen).numpy()
    users = interactions["user_id"].to_numpy()[perm]
    codes, first = pd.factorize(users)  # groups in order of first appearance, like RecBole's _grouped_index
    order = np.argsort(codes, kind="stable")  # rows grouped by user, shuffled order kept inside each group
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    part = np.empty(len(perm), dtype=np.int8)
    for group in np.split(order, bounds):
        c = split_counts(len(group), ratios)
        part[group[: c[0]]] = 0
        part[group[c[0]: c[0] + c[1]]] = 1
        part[group[c[0] + c[1]:]] = 2
    shuffled = interactions.iloc[perm].reset_index(drop=True)
    return Split("random", int(seed), *(shuffled[part == p].reset_index(drop=True) for p in range(3)))


def loo_split(interactions: pd.DataFrame, seed: int = 2020) -> Split:
    """Time-ordered leave-one-out: latest interaction -> test, second latest -> valid. Ties broken by seed."""
    _check(interactions)
    if "timestamp" not in interactions.columns:
        raise DatasetError("interactions: loo split needs a 'timestamp' column; got "
                           f"{list(interactions.columns)}")
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(interactions))
    frame = interactions.assign(_tb=tiebreak).sort_values(["user_id", "timestamp", "_tb"], kind="stable")
    n = frame.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    pos = frame.groupby("user_id", sort=False).cumcount().to_numpy()
    from_end = n - 1 - pos
    # like RecBole's LS with leave_one_num=2: at most n-1 rows leave, so every user keeps one training row
    part = np.where((from_end == 0) & (n >= 2), 2, np.where((from_end == 1) & (n >= 3), 1, 0))
    frame = frame.drop(columns="_tb")
    return Split("loo", int(seed), *(frame[part == p].reset_index(drop=True) for p in range(3)))


def cold_item_split(interactions: pd.DataFrame, seed: int = 2020, fraction: float = 0.15) -> Split:
    """Hold out `fraction` (0.1-0.2) of the interacted items with all their interactions."""
    _check(interactions)
    if not 0.1 <= fraction <= 0.2:
        raise ValueError(f"fraction: expected a value between 0.1 and 0.2, got {fraction}")
    rng = np.random.default_rng(seed)
    items = np.array(sorted(pd.unique(interactions["item_id"])), dtype=object)
    n_cold = max(1, int(round(fraction * len(items))))
    cold = set(rng.choice(items, size=n_cold, replace=False).tolist())
    is_cold = interactions["item_id"].isin(cold).to_numpy()
    train = interactions[~is_cold]
    held = interactions[is_cold]
    to_test = rng.random(len(held)) < 0.5
    return Split("cold-item", int(seed), train.reset_index(drop=True), held[~to_test].reset_index(drop=True),
                 held[to_test].reset_index(drop=True), tuple(sorted(cold)))


def given_split(interactions: pd.DataFrame, labels: np.ndarray | None, seed: int = 2020) -> Split:
    """The source's own split: `labels[i]` (0 train, 1 valid, 2 test) for row i of `interactions`."""
    _check(interactions)
    if labels is None:
        raise DatasetError("split 'given': this dataset has no split of its own (an MMRec folder's x_label "
                           f"column); use one of {[s for s in SPLITS if s != 'given']}")
    labels = np.asarray(labels)
    if labels.shape != (len(interactions),):
        raise DatasetError(f"split 'given': expected one label per interaction ({len(interactions)}), "
                           f"got shape {labels.shape}")
    bad = (labels < 0) | (labels > 2)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"split 'given': row {row + 1}: expected a label 0, 1 or 2, got {labels[row]}")
    parts = [interactions[labels == p].reset_index(drop=True) for p in range(3)]
    if parts[0].empty:
        raise DatasetError("split 'given': no training rows (x_label 0); expected some")
    return Split("given", int(seed), *parts, test_excludes_valid=False)


def make_split(interactions: pd.DataFrame, name: str, seed: int = 2020, labels: np.ndarray | None = None) -> Split:
    """`labels`: the source's own split labels, used by "given" only (`Dataset.split_labels`)."""
    if name == "given":
        return given_split(interactions, labels, seed)
    if name == "random":
        return random_split(interactions, seed)
    if name == "loo":
        return loo_split(interactions, seed)
    if name == "cold-item":
        return cold_item_split(interactions, seed)
    raise ValueError(f"split: expected one of {list(SPLITS)}, got {name!r}")
