"""Full-ranking evaluation with RecBole's protocol.

Valid: rank every item except the user's train items. Test: rank every item except the user's train and
valid items (on a split with `test_excludes_valid=False`, the source's own MMRec split: the train items only,
as MMRec does). Users are those with at least one positive in the evaluated part that the model knows.
Sequential models (those with `with_history`, e.g. SASRec) score the test part with the validation
interactions appended to each user's history, as RecBole does on leave-one-out. On an item cold-start
split the candidates are the held-out (cold) items only - the question there is whether a model can rank
items nobody interacted with - and `random_baseline` gives the chance level.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from recommenders import metrics
from recommenders.models.base import SparseScores, topk_indices
from recommenders.splits import Split


def _positives(frame: pd.DataFrame, users: dict[str, int], items: dict[str, int]) -> dict[int, np.ndarray]:
    u = frame["user_id"].astype(str).map(users)
    i = frame["item_id"].astype(str).map(items)
    ok = (u.notna() & i.notna()).to_numpy()
    df = pd.DataFrame({"u": u[ok].astype(np.int64).to_numpy(), "i": i[ok].astype(np.int64).to_numpy()})
    return {int(k): np.unique(g.to_numpy()) for k, g in df.groupby("u")["i"]}


def rank_metrics(
    score_fn: Callable[[int], np.ndarray],
    n_items: int,
    targets: dict[int, np.ndarray],
    exclude: list[dict[int, np.ndarray]],
    ks: tuple[int, ...] = (10, 20),
    candidates: np.ndarray | None = None,
    item_popularity: np.ndarray | None = None,
    n_train_users: int | None = None,
    embeddings: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of the top-max(ks) lists of every user in `targets` (user index -> positive item indices).

    `score_fn(u)` gives an (n_items,) array or a `LazyScores`; a `SparseScores` is ranked by its own exact `top`
    (the same top-k as the dense vector), others are made dense."""
    kmax = max(ks)
    users = sorted(targets)
    if not users:
        raise ValueError("targets: expected at least one user with a positive to evaluate, got none")
    not_candidate = None
    if candidates is not None:
        not_candidate = np.ones(n_items, dtype=bool)
        not_candidate[candidates] = False
    hits = np.zeros((len(users), kmax), dtype=bool)
    tops = np.full((len(users), kmax), -1, dtype=np.int64)
    n_pos = np.zeros(len(users), dtype=np.int64)
    for row, u in enumerate(users):
        raw = score_fn(u)
        if isinstance(raw, SparseScores) and not_candidate is None:
            # the exact top-k of the dense vector without building it (a sparse item-item row sum at 1M items)
            ex = [e[u] for e in exclude if u in e]
            top, _ = raw.top(kmax, np.concatenate(ex) if ex else None)
        else:
            scores = np.asarray(raw, dtype=np.float64).copy()
            for ex in exclude:
                if u in ex:
                    scores[ex[u]] = -np.inf
            if not_candidate is not None:
                scores[not_candidate] = -np.inf
            top = topk_indices(scores, kmax)
        tops[row, : len(top)] = top
        hits[row, : len(top)] = np.isin(top, targets[u])
        n_pos[row] = len(targets[u])
    out = metrics.evaluate_topk(hits, n_pos, ks)
    for k in ks:
        top_k = tops[:, :k]
        valid = top_k[top_k >= 0]
        out[f"item_coverage@{k}"] = metrics.item_coverage(valid, n_items if candidates is None else len(candidates))
        if item_popularity is not None and n_train_users:
            out[f"novelty@{k}"] = metrics.novelty(valid, item_popularity, n_train_users)
        if embeddings is not None and k >= 2 and ((top_k >= 0).sum(1) >= 2).any():
            out[f"diversity@{k}"] = metrics.intra_list_diversity(top_k, embeddings)
    out["n_users"] = float(len(users))
    return out


def evaluate_model(model: Any, split: Split, ks: tuple[int, ...] = (10, 20), parts: tuple[str, ...] = ("valid", "test"),
                   embeddings: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """{"valid": {...}, "test": {...}} for a model fitted on `split.train`."""
    users = {u: n for n, u in enumerate(model.user_ids)}
    items = {i: n for n, i in enumerate(model.item_ids)}
    unknown = [p for p in parts if p not in ("valid", "test")]
    if unknown:
        raise ValueError(f"parts: expected 'valid' and/or 'test', got {list(parts)}")
    train = _positives(split.train, users, items)
    valid = _positives(split.valid, users, items)
    # split.test is read only when the test part is asked for: model selection (recommenders.search) asks for
    # "valid" alone and must not see test data.
    test = _positives(split.test, users, items) if "test" in parts else {}
    pop = np.zeros(len(items))
    for arr in train.values():
        pop[arr] += 1
    candidates = np.array(sorted(items[i] for i in split.cold_items if i in items)) if split.cold_items else None
    common = dict(ks=ks, candidates=candidates, item_popularity=pop, n_train_users=len(train), embeddings=embeddings)
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        t0 = time.perf_counter()
        test_exclude = [train, valid] if split.test_excludes_valid else [train]
        targets, exclude = (valid, [train]) if part == "valid" else (test, test_exclude)
        scorer = model
        if part == "test" and hasattr(model, "with_history"):
            scorer = model.with_history(split.valid)  # sequential models: the valid item is the latest history
        score_fn = scorer.scores if hasattr(scorer, "scores") else scorer.score
        out[part] = rank_metrics(score_fn, len(items), targets, exclude, **common)
        out[part]["eval_seconds"] = time.perf_counter() - t0
    return out


def random_baseline(split: Split, item_ids: list[str], user_ids: list[str], seed: int = 0,
                    ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    """Test metrics of a seeded uniformly random ranking, under the same protocol as `evaluate_model`."""
    users = {u: n for n, u in enumerate(user_ids)}
    items = {i: n for n, i in enumerate(item_ids)}
    train = _positives(split.train, users, items)
    valid = _positives(split.valid, users, items)
    test = _positives(split.test, users, items)
    candidates = np.array(sorted(items[i] for i in split.cold_items if i in items)) if split.cold_items else None
    rng = np.random.default_rng(seed)
    exclude = [train, valid] if split.test_excludes_valid else [train]
    return rank_metrics(lambda u: rng.random(len(items)), len(items), test, exclude, ks, candidates)
