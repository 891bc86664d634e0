"""Full-ranking metrics with RecBole 1.2.1's definitions, plus beyond-accuracy metrics.

Accuracy metrics work on `hits`, a boolean (n_users, K) matrix (hits[u, r] = the item ranked r+1 for u is a
test positive) and `n_pos`, the number of test positives per user; each returns the per-user values at K,
and `evaluate_topk` averages them over users (RecBole averages over every user with a test positive).

- Recall@K    = |hits in top K| / |R(u)|
- Precision@K = |hits in top K| / K
- Hit@K       = 1 if any hit in top K
- MRR@K       = 1 / rank of the first hit in top K (0 if none)
- NDCG@K      = DCG@K / IDCG@K, IDCG over min(|R(u)|, K) ideal positions, gains 1 / log2(rank + 1)

Beyond accuracy (over the top-K lists of all evaluated users):
- item coverage  = distinct recommended items / catalogue size (RecBole's ItemCoverage)
- novelty        = mean self-information -log2(train popularity of the item / n_users) of recommended items
- intra-list diversity = mean over lists of the mean pairwise cosine distance (1 - cos) of the items'
  content embeddings (rows L2-normalised here)
"""

from __future__ import annotations

import numpy as np

ACCURACY = ("recall", "ndcg", "hit", "mrr", "precision")


def _check(hits: np.ndarray, n_pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    n_pos = np.asarray(n_pos)
    if hits.ndim != 2 or n_pos.shape != (hits.shape[0],):
        raise ValueError(f"hits/n_pos: expected shapes (n_users, K) and (n_users,), got {hits.shape} and {n_pos.shape}")
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"k: expected 1..{hits.shape[1]} (the ranked list length), got {k}")
    if (n_pos <= 0).any():
        raise ValueError("n_pos: expected every evaluated user to have at least one test positive")
    return hits[:, :k], n_pos


def recall(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    h, n = _check(hits, n_pos, k)
    return h.sum(1) / n


def precision(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    h, _ = _check(hits, n_pos, k)
    return h.sum(1) / k


def hit(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    h, _ = _check(hits, n_pos, k)
    return h.any(1).astype(float)


def mrr(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    h, _ = _check(hits, n_pos, k)
    first = h.argmax(1)
    return np.where(h.any(1), 1.0 / (first + 1), 0.0)


def ndcg(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    h, n = _check(hits, n_pos, k)
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (h * gains).sum(1)
    idcg = np.cumsum(gains)[np.minimum(n, k) - 1]
    return dcg / idcg


FUNCTIONS = {"recall": recall, "ndcg": ndcg, "hit": hit, "mrr": mrr, "precision": precision}


def evaluate_topk(hits: np.ndarray, n_pos: np.ndarray, ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    """{"recall@10": ..., "ndcg@10": ..., ...}: each metric averaged over users, at every K."""
    return {f"{name}@{k}": float(fn(hits, n_pos, k).mean()) for k in ks for name, fn in FUNCTIONS.items()}


def item_coverage(top_items: np.ndarray, n_items: int) -> float:
    if n_items <= 0:
        raise ValueError(f"n_items: expected a positive catalogue size, got {n_items}")
    return float(len(np.unique(np.asarray(top_items).ravel())) / n_items)


def novelty(top_items: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean -log2(p_i) with p_i = (train users of item i) / n_users; unseen items count as 1 user."""
    pop = np.maximum(np.asarray(item_popularity, dtype=float), 1.0)
    p = pop[np.asarray(top_items)] / float(n_users)
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(top_items: np.ndarray, embeddings: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance between the listed items' embeddings.

    `top_items` is (n_lists, K) item indices; -1 pads lists shorter than K; lists with < 2 items are skipped.
    """
    top = np.asarray(top_items)
    if top.ndim != 2 or top.shape[1] < 2:
        raise ValueError(f"top_items: expected (n_lists, K>=2) item indices, got shape {top.shape}")
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    mask = top >= 0
    m = mask.sum(1)
    keep = m >= 2
    if not keep.any():
        raise ValueError("top_items: expected at least one list with two or more items")
    vecs = emb[np.where(mask, top, 0)] * mask[..., None]  # (n_lists, K, d), padded rows zeroed
    vecs, m = vecs[keep], m[keep]
    summed = vecs.sum(1)  # sum_{a,b} <v_a, v_b> = |sum_a v_a|^2
    pair_sum = (summed * summed).sum(1) - (vecs * vecs).sum((1, 2))
    return float(np.mean(1.0 - pair_sum / (m * (m - 1))))
