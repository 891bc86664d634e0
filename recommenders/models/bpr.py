"""BPR-MF (Rendle et al., UAI 2009): user and item factors trained with the pairwise BPR loss.

Own implementation (torch, Adam, uniform negatives, validation early stopping) rather than `implicit`:
`implicit` is not in our pinned requirements, and its BPR (SGD with Hogwild threads) is neither seeded
to bit-reproducibility nor early-stopped on a validation ranking metric, which the RecBole protocol needs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recommenders.models.base import FactorModel
from recommenders.models.sgd import torch_generator, train_bpr
from recommenders.sizing import factor_bytes


class _MF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, reg: float, gen: torch.Generator) -> None:
        super().__init__()
        self.user = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim), generator=gen))
        self.item = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_items, dim), generator=gen))
        self.reg = reg

    def loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        eu, ei, ej = self.user[u], self.item[i], self.item[j]
        diff = (eu * (ei - ej)).sum(1)
        reg = (eu.square().sum() + ei.square().sum() + ej.square().sum()) / len(u)
        return -nn.functional.logsigmoid(diff).mean() + self.reg * reg

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.user[users] @ self.item.T


class BPR(FactorModel):
    name = "bpr"
    iterative = True
    defaults: Mapping[str, object] = {
        "dim": 64,  # embedding size of the RecBole protocol
        "lr": 0.002,  # Adam; 2x RecBole's 1e-3 reaches the same optimum in half the epochs
        "reg": 0.0,  # L2 on the batch embeddings (RecBole's BPR uses none)
        "batch_size": 2048,
        "epochs": 300,  # upper bound; validation early stopping ends far earlier
        "eval_every": 1,
        "patience": 10,  # RecBole's stopping_step
        "seed": 2020,
    }

    def _cost(self, n_users, n_items, nnz, dims):
        extra = 48.0 * nnz * 2 + 4.0 * (n_users + n_items) * int(self.params["dim"]) * 2 * int(self.params.get("layers", 0))
        return factor_bytes(n_users, n_items, nnz, int(self.params["dim"])) + extra, None, \
            "embeddings with Adam state, sampler arrays, a validation chunk of scores"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        gen = torch_generator(int(p["seed"]))
        module = _MF(train.shape[0], train.shape[1], int(p["dim"]), float(p["reg"]), gen)
        train_bpr(module, train, valid, p, np.random.default_rng(int(p["seed"])), self.history,
                  progress=self.progress, desc=self.name)
        self._set_factors(module.user.detach().numpy(), module.item.detach().numpy())
