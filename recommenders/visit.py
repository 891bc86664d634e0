"""Learning within a visit: what the visitor passed over on this visit's pages counts on the next page.

A model's fold-in (`Recommender.recommend_with_feedback`) reads the visitor's likes and dislikes; a visitor
who is shown ten items and acts on two has said something about the other eight too (they were shown and not
taken: weak evidence, since a card may not even have been looked at). This layer uses it, with the nearest
training users as the carrier:

1. every training user v gets a similarity to the visitor from the items they share
       sim(v) = |P_v & liked| - skip_weight |P_v & skipped| - dislike_weight |P_v & disliked|
   divided by |P_v| ** degree_power (P_v: v's training positives; `liked` includes the visitor's history);
2. the `neighbours` users with the largest positive similarity vote for their positives, weighted by it
   (user-based kNN, the scores sparse: only their items score);
3. the ranking is the blend (1 - mix) z(model's fold-in) + mix z(neighbour votes), z over the whole
   catalogue (a score's mean and standard deviation over every item), so that neither scale dominates by accident.

A skipped item lowers the weight of every user who liked it, so the next page moves away from what the visitor
keeps passing over, and the neighbours who share the visitor's likes but not their skips move up. It applies
only when the visit has skipped items: before the first page is passed over the ranking is the model's own.

The defaults were chosen on the learning-loop simulator (`app.simulate.learning_loop`) with seeds 10-33, never
on the seeds 0-3 that BENCHMARKS.md reports (`python -m bench.bench_visit_grid`; BENCHMARKS.md, "Learning within
a visit"): +61% cumulative likes over the static control on average, where the fold-in alone gives +16%. Most of
that is the neighbours' votes on the visit's likes; the skips add most when the neighbourhood is small. The index
(`VisitIndex`) is the training positives twice, by user and by item (float32 CSR and CSC): 8 bytes per positive
each, built once per model on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import LazyScores, OffsetSparseScores, SparseScores, topk_indices

__all__ = ["DEFAULT_VISIT", "VisitIndex", "VisitLearning", "blend_scores"]


@dataclass(frozen=True)
class VisitLearning:
    """How much this visit's skips count; the defaults carry the why (chosen on simulator seeds 10-33)."""

    mix: float = 0.9  # the votes' share of the blend (0.5 / 0.75: +46% / +56%; 1.0: +62%, a worse worst seed)
    neighbours: int = 400  # users who vote (100: +54%; all 943 of ml-100k: +61%, a plateau)
    skip_weight: float = 0.15  # a skip is weak evidence, an unexamined card is skipped too (0: +61.0%, 0.3: +56%)
    dislike_weight: float = 0.5  # dislikes are rare in a visit (0 / 1: +60.8% / +61.3%)
    degree_power: float = 0.0  # 0: a heavy user's overlap is not discounted (0.25 / 0.5: +49% / +36%)

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix: expected a share in [0, 1], got {self.mix!r}")
        if isinstance(self.neighbours, bool) or not isinstance(self.neighbours, (int, np.integer)) \
                or self.neighbours < 1:
            raise ValueError(f"neighbours: expected a positive integer, got {self.neighbours!r}")
        for name in ("skip_weight", "dislike_weight", "degree_power"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")


DEFAULT_VISIT = VisitLearning()


class VisitIndex:
    """The training positives by user (CSR) and by item (CSC), float32, and each user's count of them."""

    def __init__(self, positives: sp.spmatrix) -> None:
        rows = sp.csr_matrix(positives, dtype=np.float32, copy=True)
        rows.sum_duplicates()
        rows.data[:] = 1.0
        self.by_user = rows  # (n_users, n_items)
        self.by_item = rows.tocsc()  # (n_users, n_items), column slices
        self.degree = np.diff(rows.indptr).astype(np.float64)  # positives per user
        self.n_items = rows.shape[1]

    def _overlap(self, items: np.ndarray) -> np.ndarray:
        """(n_users,) how many of `items` each user has among their positives."""
        if not len(items):
            return np.zeros(self.by_user.shape[0])
        cols = self.by_item[:, items]
        return np.bincount(cols.indices, minlength=self.by_user.shape[0]).astype(np.float64)

    def similarity(self, liked: np.ndarray, disliked: np.ndarray, skipped: np.ndarray,
                   visit: VisitLearning = DEFAULT_VISIT) -> np.ndarray:
        """(n_users,) sim(v) of the module docstring."""
        sim = self._overlap(liked)
        if len(skipped) and visit.skip_weight:
            sim -= visit.skip_weight * self._overlap(skipped)
        if len(disliked) and visit.dislike_weight:
            sim -= visit.dislike_weight * self._overlap(disliked)
        if visit.degree_power:
            sim /= np.maximum(self.degree, 1.0) ** visit.degree_power
        return sim

    def neighbour_scores(self, liked: np.ndarray, disliked: np.ndarray, skipped: np.ndarray,
                         visit: VisitLearning = DEFAULT_VISIT) -> SparseScores:
        """The votes of the `visit.neighbours` most similar users with a positive similarity: sum of sim(v) over
        the neighbours v who have an item among their positives; 0 for every other item."""
        sim = self.similarity(liked, disliked, skipped, visit)
        sim[sim <= 0] = -np.inf  # only users closer than nothing vote
        top = topk_indices(sim, visit.neighbours)
        if not len(top):
            return SparseScores(self.n_items, np.empty(0, np.int64), np.empty(0))
        votes = sp.csr_matrix(sim[top].reshape(1, -1)) @ self.by_user[top]  # (1, n_items), sparse
        votes = votes.tocsr()
        votes.sum_duplicates()
        return SparseScores(self.n_items, votes.indices.astype(np.int64), votes.data.astype(np.float64))


def _moments(scores: np.ndarray | SparseScores) -> tuple[float, float]:
    """(mean, standard deviation) over every item; a sparse score's zeros count."""
    if isinstance(scores, SparseScores):
        n = scores.n
        mean = float(scores.values.sum()) / n
        var = float(np.square(scores.values).sum()) / n - mean * mean
        return mean, float(np.sqrt(max(var, 0.0)))
    finite = scores[np.isfinite(scores)]
    if not len(finite):
        return 0.0, 0.0
    return float(finite.mean()), float(finite.std())


def _standardised(scores: np.ndarray | SparseScores, weight: float) -> np.ndarray | OffsetSparseScores:
    """weight * z(scores); a constant score (std 0) contributes nothing."""
    mean, std = _moments(scores)
    scale = weight / std if std > 0 else 0.0
    if isinstance(scores, SparseScores):
        return OffsetSparseScores(scores.n, -mean * scale, scores.indices, (scores.values - mean) * scale)
    return np.where(np.isfinite(scores), (scores - mean) * scale, scores)


def blend_scores(model: np.ndarray | LazyScores, votes: SparseScores, mix: float
                 ) -> np.ndarray | OffsetSparseScores:
    """(1 - mix) z(model) + mix z(votes). Sparse in, sparse out (`OffsetSparseScores`: a constant plus the
    items either score touches), so a sparse item-item model at a million items never builds a dense vector;
    any other model's scores are made dense. A -inf model score (an item the model never ranks) stays -inf."""
    b = _standardised(votes, mix)
    if isinstance(model, SparseScores):
        a = _standardised(model, 1.0 - mix)
        return a.plus(b)
    a = _standardised(np.asarray(model, dtype=np.float64), 1.0 - mix)
    out = a + b.offset
    out[b.indices] += b.values - b.offset  # the indices are unique
    return out
