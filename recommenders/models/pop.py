"""Most popular: every user gets the items with the most training positives (RecBole's Pop)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender


class Pop(Recommender):
    name = "pop"
    defaults: Mapping[str, object] = {}

    def _cost(self, n_users, n_items, nnz, dims):
        return 24.0 * n_items, nnz / 2e7, "item counts"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        self.popularity = np.asarray(train.sum(0), dtype=np.float64).ravel()  # (n_items,) positive counts

    def _score_one(self, user: int) -> np.ndarray:
        return self.popularity.copy()

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self.popularity.copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float64)
