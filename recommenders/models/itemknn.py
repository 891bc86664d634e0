"""Item-based k-nearest neighbours: cosine item-item similarity over the user-item matrix.

Like RecBole's ItemKNN: cosine with an optional shrink term, only the `k` most similar items are kept per
item, and score(u, i) = sum over the user's positives j of sim(j, i).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender


class ItemKNN(Recommender):
    name = "itemknn"
    defaults: Mapping[str, object] = {
        "k": 100,  # neighbours kept per item (RecBole's default for ml-100k)
        "shrink": 0.0,  # cosine shrink term: sim = a.b / (|a||b| + shrink)
    }

    def _cost(self, n_users, n_items, nnz, dims):
        # measured peak 4.0-4.3 x n_items^2 x 8 bytes at 3k-6k items (bench/bench_scale_models.py --calibrate)
        n = float(n_items)
        return 4.5 * n * n * 8, 3e-7 * n * n + nnz / 1e6, \
            "dense n_items x n_items co-occurrence, similarity and ranking arrays: 4.5 x n_items^2 x 8 bytes"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        x = train.tocsc().astype(np.float64)
        co = (x.T @ x).toarray()  # (n_items, n_items) co-occurrence counts
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + float(self.params["shrink"]) + 1e-12)
        np.fill_diagonal(sim, 0.0)
        k = min(int(self.params["k"]), sim.shape[0] - 1)
        if k < 1:
            raise ValueError(f"k: expected at least 1 neighbour, got {self.params['k']}")
        # keep, for every target item i (column), its k most similar source items j (rows)
        keep = np.argpartition(-sim, k - 1, axis=0)[:k]
        cols = np.broadcast_to(np.arange(sim.shape[1]), keep.shape)
        self.sim = sp.csr_matrix((sim[keep, cols].ravel(), (keep.ravel(), cols.ravel())), shape=sim.shape)
        self.sim.eliminate_zeros()
        self._train = train
        self._dense = self._densify()

    def _densify(self) -> np.ndarray | None:
        """A dense copy for catalogues up to 5000 items (200 MB at most): row sums there cost microseconds."""
        return self.sim.toarray() if self.sim.shape[0] <= 5000 else None

    def _score_one(self, user: int) -> np.ndarray:
        row = self._train.indices[self._train.indptr[user]: self._train.indptr[user + 1]]
        return self._fold_in(row)

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[items].sum(0)
        return np.asarray(self.sim[items].sum(0), dtype=np.float64).ravel()

    def _state(self) -> dict[str, np.ndarray]:
        return {"sim_data": self.sim.data, "sim_indices": self.sim.indices, "sim_indptr": self.sim.indptr,
                "train_indices": self._train.indices, "train_indptr": self._train.indptr}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        n = len(self.item_ids)
        self.sim = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n))
        ind = arrays["train_indices"]
        self._train = sp.csr_matrix((np.ones(len(ind)), ind, arrays["train_indptr"]), shape=(len(self.user_ids), n))
        self._dense = self._densify()
