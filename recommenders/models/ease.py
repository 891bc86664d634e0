"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder with a zero diagonal.

B = I - P diagMat(1 / diag(P)), P = (X^T X + lambda I)^-1; score(u) = x_u B.

`ease-text` adds the items' text to the Gram matrix, as if every item's L2-normalised MiniLM embedding
were `text_weight` extra "users" (collective EASE with side information): G = X^T X + w F F^T + lambda I.
Items that read alike then share weight, which helps items with few interactions. Where the interactions carry
explicit ratings (a `rating` column, e.g. MovieLens' 1-5 stars) it also adds *how much* each user liked each
item: c Xc^T Xc, Xc = the ratings centred on each user's mean (`rating_weight` c). Two items rated on the same
side of a user's average then share more weight than two rated on opposite sides, which plain co-occurrence
cannot tell apart. Without ratings (or when all of a user's ratings are equal) the term is zero. Scoring is
unchanged.

Logged feedback (recommenders/signals.py): positives enter X with their weight (a like 1.0, a click 0.5;
the dataset's ratings 1.0), so B is unchanged on unweighted data. Explicit negatives down-weight: a user's
score is x_u B - negative_weight * sum of B's rows of the items they disliked, so items that co-occur with
a disliked item drop; B itself is learned from positives only.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender
from recommenders.sizing import FLOPS


class EASE(Recommender):
    name = "ease"
    uses_weights = True
    uses_negatives = True
    defaults: Mapping[str, object] = {
        "reg": 250.0,  # L2 strength lambda; RecBole's default, chosen on ml-100k valid NDCG@10 (see RESULTS)
        "negative_weight": 0.5,  # a dislike pulls its neighbours down by half as much as a like pushes them up
    }

    def _gram(self, train: sp.csr_matrix, features: dict[str, np.ndarray]) -> np.ndarray:
        x = (self._train_weights if self._train_weights is not None else train).astype(np.float64)
        return (x.T @ x).toarray()

    def _cost(self, n_users, n_items, nnz, dims):
        # measured peak 4.0-4.6 x n_items^2 x 8 bytes at 2k-8k items (bench/bench_scale_models.py --calibrate):
        # the Gram matrix, LAPACK's copy of it, the inverse and the weights
        n = float(n_items)
        d = float(dims.get("text", 0)) if self.needs else 0.0
        return 4.5 * n * n * 8 + 8 * n * d, (2 * n ** 3 + 2 * n * n * d) / FLOPS, \
            "dense n_items x n_items Gram, inverse and weights: 4.5 x n_items^2 x 8 bytes"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        reg = float(self.params["reg"])
        if reg <= 0:
            raise ValueError(f"reg: expected a positive L2 strength, got {reg}")
        gram = self._gram(train, features)
        gram[np.diag_indices_from(gram)] += reg
        p = np.linalg.inv(gram)
        self.B = -p / np.diag(p)  # (n_items, n_items); column j divided by P_jj
        np.fill_diagonal(self.B, 0.0)
        self._train = train

    def _score_one(self, user: int) -> np.ndarray:
        items = self._train.indices[self._train.indptr[user]: self._train.indptr[user + 1]]
        neg = self._negatives
        if neg is not None and neg.indptr[user + 1] > neg.indptr[user]:
            return self._fold_in_feedback(items, neg.indices[neg.indptr[user]: neg.indptr[user + 1]])
        return self._fold_in(items)

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self.B[items].sum(0)

    def _fold_in_feedback(self, items: np.ndarray, negatives: np.ndarray) -> np.ndarray:
        weight = float(self.params.get("negative_weight", 0.0))
        return self.B[items].sum(0) - weight * self.B[negatives].sum(0)

    def _state(self) -> dict[str, np.ndarray]:
        return {"B": self.B, "train_indices": self._train.indices, "train_indptr": self._train.indptr}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.B = np.asarray(arrays["B"], dtype=np.float64)
        ind = arrays["train_indices"]
        n = len(self.item_ids)
        self._train = sp.csr_matrix((np.ones(len(ind)), ind, arrays["train_indptr"]), shape=(len(self.user_ids), n))


def user_centred(values: sp.csr_matrix) -> sp.csr_matrix:
    """`values` with each row's mean over its stored entries subtracted from those entries (zeros stay zeros)."""
    out = values.astype(np.float64, copy=True).tocsr()
    counts = np.diff(out.indptr)
    out.data -= np.repeat(np.asarray(out.sum(1)).ravel() / np.maximum(counts, 1), counts)
    return out


class EASEText(EASE):
    name = "ease-text"
    needs = ("text",)
    uses_ratings = True
    defaults: Mapping[str, object] = {
        "reg": 400.0,  # lambda and text_weight: the middle of the plateau of a grid on ml-100k valid NDCG@10
        "text_weight": 30.0,  # (w in 20..50 x lambda in 300..500 all within 0.001; see bench/RESULTS-recommenders.md)
        # c of the centred-rating Gram term: the best mean valid NDCG@10 over ml-100k seeds 2020, 2, 3 of a grid
        # reg 300/400/550 x text_weight 15/30/45 x c 0.1/0.2/0.3 (BENCHMARKS.md, issue 27 goal 2); 0 turns it off
        "rating_weight": 0.2,
        "negative_weight": 0.5,  # as EASE
    }

    def _gram(self, train: sp.csr_matrix, features: dict[str, np.ndarray]) -> np.ndarray:
        weight, rating_weight = float(self.params["text_weight"]), float(self.params["rating_weight"])
        if weight < 0:
            raise ValueError(f"text_weight: expected a non-negative weight, got {weight}")
        if not rating_weight >= 0:
            raise ValueError(f"rating_weight: expected a non-negative weight, got {rating_weight}")
        gram = super()._gram(train, features)
        if rating_weight > 0 and self._train_ratings is not None:
            centred = user_centred(self._train_ratings)
            gram += rating_weight * (centred.T @ centred).toarray()
        f = features["text"].astype(np.float64)
        f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        gram += weight * (f @ f.T)
        return gram
