"""`lowpass`: the ideal low-pass graph filter of GF-CF (Shen et al., CIKM 2021), a closed-form spectral model.

The user-item matrix is normalised by both degrees, R~ = D_U^-1/2 X D_I^-1/2, and its `factors` leading right
singular vectors V (the smoothest signals on the item-item graph R~^T R~) are kept. A user's scores are their
history filtered through that subspace and scaled back: s_u = x_u D_I^-1/2 V V^T D_I^1/2. It keeps only the
catalogue's broad, low-frequency taste directions, where EASE keeps every item-item weight; their errors differ,
which is why it helps inside `blend` (BENCHMARKS.md, issue 27 goal 2).

It is a factor model: user vector x_u D_I^-1/2 V, item vector D_I^1/2 V (no bias), so it ranks through the same
exact product or ANN index as the other factor models. A new user's vector is their items' D_I^-1/2 V rows summed.
The SVD is exact (LAPACK) while the dense normalised matrix is small, else ARPACK (`scipy.sparse.linalg.svds`)
from a fixed start vector: both are deterministic.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import FactorModel
from recommenders.sizing import FLOPS, factor_bytes

DENSE_SVD_CELLS = 25_000_000  # n_users x n_items up to which the SVD is LAPACK's on the dense matrix (200 MB)


class LowPass(FactorModel):
    name = "lowpass"
    defaults: Mapping[str, object] = {
        # singular vectors kept: 64 had the best mean valid NDCG@10 inside the blend of 32 / 64 / 128 on ml-100k
        # seeds 2020, 2, 3 (GF-CF's own choice was 256 on catalogues of 40k-90k items)
        "factors": 64,
    }

    def _cost(self, n_users, n_items, nnz, dims):
        k = int(self.params["factors"])
        cells = float(n_users) * n_items
        if cells <= DENSE_SVD_CELLS:  # the dense matrix, LAPACK's copy and U, s, Vt (full_matrices=False)
            m = float(min(n_users, n_items))
            return 8 * (3 * cells + m * (n_users + n_items)), 4 * cells * m / FLOPS, \
                "dense normalised n_users x n_items matrix and its thin SVD: 8 x (3 x cells + min x (users + items))"
        return 24.0 * nnz + factor_bytes(n_users, n_items, 0, k) + 8.0 * (n_users + n_items) * 4 * k, \
            None, "sparse normalised matrix, ARPACK's Lanczos basis and the factors"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        k = self.params["factors"]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"factors: expected a positive integer, got {k!r}")
        x = train.astype(np.float64).tocsr()
        n_users, n_items = x.shape
        du = np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)
        di = np.maximum(np.asarray(x.sum(0)).ravel(), 1.0)
        r = sp.diags(1 / np.sqrt(du)) @ x @ sp.diags(1 / np.sqrt(di))
        k = min(int(k), min(n_users, n_items))
        if n_users * n_items <= DENSE_SVD_CELLS or k >= min(n_users, n_items) - 1:
            vt = np.linalg.svd(r.toarray(), full_matrices=False)[2][:k]
        else:
            from scipy.sparse.linalg import svds

            v0 = np.random.default_rng(0).standard_normal(min(n_users, n_items))
            vt = svds(r, k=k, v0=v0, return_singular_vectors="vh")[2]
        v = vt.T  # (n_items, k)
        self.Q = np.ascontiguousarray(v / np.sqrt(di)[:, None])  # D_I^-1/2 V: what a history maps through
        self._set_factors(x @ self.Q, v * np.sqrt(di)[:, None])

    def _fold_in(self, items: np.ndarray):
        return self._scores(self.Q[np.asarray(items, dtype=np.int64)].sum(0))

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "Q": self.Q}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.Q = np.asarray(arrays["Q"], dtype=np.float64)
