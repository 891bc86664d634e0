"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the normalised user-item graph, BPR loss.

E^(k+1) = D^-1/2 A D^-1/2 E^(k) on the bipartite graph; the final embedding is the mean of layers 0..L.
The L2 term acts on the layer-0 (ego) embeddings of the batch, as in the paper and RecBole.
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


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the (n_users + n_items) bipartite graph, as a coalesced torch sparse COO tensor."""
    n_users, n_items = train.shape
    a = sp.bmat([[None, train], [train.T, None]], format="csr").astype(np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    return to_torch(sp.diags(inv) @ a @ sp.diags(inv))


def to_torch(m: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a coalesced float32 torch sparse COO tensor."""
    coo = m.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data.astype(np.float32)), size=coo.shape,
                                   check_invariants=True).coalesce()


class _LightGCN(nn.Module):
    def __init__(self, adj: torch.Tensor, n_users: int, n_items: int, dim: int, layers: int, reg: float,
                 gen: torch.Generator) -> None:
        super().__init__()
        self.adj, self.n_users, self.layers, self.reg = adj, n_users, layers, reg
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim), generator=gen))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim), generator=gen))

    def _graph(self, item_ego: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items): the mean of the ego embeddings and their `layers` propagations over the graph."""
        e = torch.cat([self.user, item_ego])  # (n_users + n_items, dim)
        acc = e
        for _ in range(self.layers):
            e = self.adj @ e
            acc = acc + e
        out = acc / (self.layers + 1)
        return out[: self.n_users], out[self.n_users:]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._graph(self.item)

    def ego_reg(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """L2 of the batch's ego embeddings, per triple."""
        return (self.user[u].square().sum() + self.item[i].square().sum() + self.item[j].square().sum()) / len(u)

    def loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        users, items = self.propagate()
        eu, ei, ej = users[u], items[i], items[j]
        bpr = -nn.functional.logsigmoid((eu * (ei - ej)).sum(1)).mean()
        return bpr + self.reg * self.ego_reg(u, i, j)

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.propagate()
        return u[users] @ i.T


class LightGCN(FactorModel):
    name = "lightgcn"
    iterative = True
    defaults: Mapping[str, object] = {
        "dim": 64,
        "layers": 2,  # RecBole's default for ml-100k
        "reg": 1e-4,  # L2 on ego embeddings
        "lr": 0.002,
        "batch_size": 2048,
        "epochs": 300,
        "eval_every": 1,
        "patience": 10,
        "seed": 2020,
    }

    def _cost(self, n_users, n_items, nnz, dims):
        extra = 48.0 * nnz * 2 + 4.0 * (n_users + n_items) * int(self.params["dim"]) * 2 * int(self.params.get("layers", 0))
        return factor_bytes(n_users, n_items, nnz, int(self.params["dim"])) + extra, None, \
            "embeddings with Adam state, sampler arrays, a validation chunk of scores"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        gen = torch_generator(int(p["seed"]))
        module = _LightGCN(normalized_adjacency(train), train.shape[0], train.shape[1], int(p["dim"]),
                           int(p["layers"]), float(p["reg"]), gen)
        train_bpr(module, train, valid, p, np.random.default_rng(int(p["seed"])), self.history,
                  progress=self.progress, desc=self.name)
        with torch.no_grad():
            users, items = module.propagate()
        self._set_factors(users.numpy(), items.numpy())
