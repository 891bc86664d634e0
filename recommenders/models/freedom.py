"""`freedom`: frozen modality item-item kNN graphs fused with LightGCN on the user-item graph.

After FREEDOM (Zhou & Shen, ACM MM 2023, "A Tale of Two Graphs: Freezing and Denoising Graph Structures
for Multimodal Recommendation"), which simplifies LATTICE (Zhang et al., ACM MM 2021) by freezing the
item-item graph:

1. per modality m, a kNN graph S_m: each item keeps its `knn` most cosine-similar items (features L2-
   normalised, self excluded), symmetric normalisation D^-1/2 S_m D^-1/2; the graphs are averaged with
   equal weights (LATTICE learns the weights; FREEDOM fixes them) into one frozen sparse matrix S;
2. item ID embeddings are smoothed over S for `item_layers` steps: h = S^L e (content-driven neighbours
   share weight; an item with no interactions still gets its neighbours' embeddings);
3. user and item ID embeddings are propagated over the normalised user-item graph as in LightGCN
   (`layers` steps, mean of the layers);
4. item vector = LightGCN item + h; user vector = LightGCN user; score = dot product.

Loss: BPR on the fused vectors, plus (weight `content_weight`) FREEDOM's modality BPR term: the user
vector against the projected features W f_i, which ties the content projection to the user space. L2
(`reg`) on the batch's ego embeddings, as LightGCN. FREEDOM's degree-sensitive edge pruning of the
user-item graph is not implemented (it is a training-time denoiser; the graph here is used as is).
Every graph op is a torch sparse x dense product; the kNN graph is built in row chunks (no n x n dense
matrix for catalogues beyond `chunk` rows at a time). Items without training positives have their ego
embeddings masked to zero (in training and serving), so they are scored through their content
neighbours (item cold start).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recommenders.models.base import FactorModel
from recommenders.models.lightgcn import _LightGCN, normalized_adjacency, to_torch
from recommenders.models.sgd import torch_generator, train_bpr
from recommenders.models.vbpr import content_matrix
from recommenders.sizing import FLOPS, factor_bytes


def knn_graph(features: np.ndarray, k: int, chunk: int = 1024) -> sp.csr_matrix:
    """Symmetrically normalised cosine kNN graph (n, n): k neighbours per row, self excluded, weights 1."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"knn: expected 1 <= knn < n_items ({n}), got {k}")
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    rows, cols = [], []
    for start in range(0, n, chunk):
        sim = f[start: start + chunk] @ f.T  # (chunk, n)
        idx = np.arange(start, min(start + chunk, n))
        sim[idx - start, idx] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(idx, k))
        cols.append(top.ravel())
    a = sp.csr_matrix((np.ones(n * k, dtype=np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, deg, 1.0) ** -0.5
    return (sp.diags(inv) @ a @ sp.diags(inv)).tocsr().astype(np.float32)


class _Freedom(_LightGCN):
    """LightGCN over the user-item graph, plus item embeddings propagated over the frozen modality graph."""

    def __init__(self, adj: torch.Tensor, item_graph: torch.Tensor, content: torch.Tensor, n_users: int,
                 n_items: int, p: Mapping[str, object], gen: torch.Generator) -> None:
        super().__init__(adj, n_users, n_items, int(p["dim"]), int(p["layers"]), float(p["reg"]), gen)
        self.item_graph, self.content = item_graph, content
        self.item_layers, self.content_weight = int(p["item_layers"]), float(p["content_weight"])
        self.proj = nn.Parameter(nn.init.xavier_uniform_(torch.empty(content.shape[1], int(p["dim"])), generator=gen))
        self.warm = torch.ones(n_items, 1)  # 0 for items without training positives: their ego is never used

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        item_ego = self.item * self.warm
        h = item_ego
        for _ in range(self.item_layers):
            h = self.item_graph @ h  # (n_items, dim) over the frozen modality graph
        users, items = self._graph(item_ego)
        return users, items + h

    def loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        users, items = self.propagate()
        eu = users[u]
        out = -nn.functional.logsigmoid((eu * (items[i] - items[j])).sum(1)).mean()
        if self.content_weight > 0:
            ci, cj = self.content[i] @ self.proj, self.content[j] @ self.proj
            out = out - self.content_weight * nn.functional.logsigmoid((eu * (ci - cj)).sum(1)).mean()
        return out + self.reg * self.ego_reg(u, i, j)


class Freedom(FactorModel):
    name = "freedom"
    needs_any_modality = True
    iterative = True
    defaults: Mapping[str, object] = {
        "dim": 64,
        "layers": 2,  # user-item LightGCN layers (as `lightgcn`)
        "item_layers": 1,  # steps over the modality graph (FREEDOM's default)
        "knn": 10,  # neighbours per item in each modality graph (LATTICE's and FREEDOM's default)
        "content_weight": 0.1,  # weight of the modality BPR term
        "reg": 1e-4,
        "lr": 0.002,
        "batch_size": 2048,
        "epochs": 300,
        "eval_every": 1,
        "patience": 10,
        "seed": 2020,
    }

    def _cost(self, n_users, n_items, nnz, dims):
        dim, k = int(self.params["dim"]), int(self.params["knn"])
        width = sum(dims.values())
        graphs = len(dims) * (n_items * k * 24.0 + 1024.0 * n_items * 8)  # kNN graphs + one similarity chunk
        extra = 48.0 * nnz * 2 + 4.0 * (n_users + n_items) * dim * 2 * (int(self.params["layers"]) + 1)
        seconds = 2.0 * n_items * n_items * width / FLOPS  # the brute-force kNN graphs, before any epoch
        return factor_bytes(n_users, n_items, nnz, dim, width, dim) + graphs + extra, seconds, \
            "LightGCN embeddings with Adam state, content kNN graphs, a validation chunk of scores"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        k = min(int(p["knn"]), train.shape[1] - 1)
        graphs = [knn_graph(np.asarray(features[m], dtype=np.float32), k) for m in sorted(features)]
        item_graph = to_torch(sum(graphs[1:], graphs[0]) / len(graphs))
        gen = torch_generator(int(p["seed"]))
        module = _Freedom(normalized_adjacency(train), item_graph, torch.from_numpy(content_matrix(features)),
                          train.shape[0], train.shape[1], p, gen)
        warm = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
        module.warm = torch.zeros(train.shape[1], 1)
        module.warm[torch.from_numpy(warm)] = 1.0
        train_bpr(module, train, valid, p, np.random.default_rng(int(p["seed"])), self.history, negatives=warm,
                  progress=self.progress, desc=self.name)
        with torch.no_grad():
            users, items = module.propagate()
        self._set_factors(users.numpy(), items.numpy())
