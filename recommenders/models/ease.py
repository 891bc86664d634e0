"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder with a zero diagonal.

B = I - P diagMat(1 / diag(P)), P = (X^T X + lambda I)^-1; score(u) = x_u B.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender


class EASE(Recommender):
    name = "ease"
    defaults: Mapping[str, object] = {
        "reg": 250.0,  # L2 strength lambda; RecBole's default, chosen on ml-100k valid NDCG@10 (see RESULTS)
    }

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        reg = float(self.params["reg"])
        if reg <= 0:
            raise ValueError(f"reg: expected a positive L2 strength, got {reg}")
        x = train.astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += reg
        p = np.linalg.inv(gram)
        self.B = -p / np.diag(p)  # (n_items, n_items); column j divided by P_jj
        np.fill_diagonal(self.B, 0.0)
        self._train = train

    def _score_one(self, user: int) -> np.ndarray:
        return self._fold_in(self._train.indices[self._train.indptr[user]: self._train.indptr[user + 1]])

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self.B[items].sum(0)

    def _state(self) -> dict[str, np.ndarray]:
        return {"B": self.B, "train_indices": self._train.indices, "train_indptr": self._train.indptr}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.B = np.asarray(arrays["B"], dtype=np.float64)
        ind = arrays["train_indices"]
        n = len(self.item_ids)
        self._train = sp.csr_matrix((np.ones(len(ind)), ind, arrays["train_indptr"]), shape=(len(self.user_ids), n))
