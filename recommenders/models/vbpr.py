"""Content models trained with the BPR loss on frozen item features (MiniLM text, CLIP image).

- `vbpr` (after He & McAuley, AAAI 2016, VBPR-style hybrid), f_i concatenating every modality passed in
  `features` (each row L2-normalised) and E projecting it to `content_dim`:
    fusion="concat" (VBPR as published): score(u, i) = gamma_u . gamma_i + theta_u . (E f_i) + beta_i + beta' . f_i
    fusion="sum" (default):              score(u, i) = gamma_u . (gamma_i + E f_i) + beta_i + beta' . f_i
  "sum" makes the projected content a prior that the ID factors correct, with no extra user parameters; it
  validated better on ml-100k (see bench/RESULTS-recommenders.md). Items without training positives get
  gamma_i = 0 and beta_i = 0, so they are ranked by their content alone (item cold-start).
- `text`: the content half only, on the text modality: score(u, i) = theta_u . (E f_i) + beta' . f_i.
  It scores any item from its text, including items nobody has interacted with.

Negatives are drawn from items with at least one training positive: pushing the content of unseen items
down as "negative" would teach the model that new items are bad, which is what cold-start must avoid.
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


def content_matrix(features: Mapping[str, np.ndarray], modalities: tuple[str, ...] | None = None) -> np.ndarray:
    """Concatenate the chosen modalities (sorted by name), each row L2-normalised; (n_items, sum d)."""
    keys = sorted(features) if modalities is None else list(modalities)
    blocks = []
    for key in keys:
        f = np.asarray(features[key], dtype=np.float32)
        blocks.append(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12))
    return np.concatenate(blocks, axis=1)


class _VBPR(nn.Module):
    def __init__(self, content: torch.Tensor, n_users: int, n_items: int, id_dim: int, content_dim: int,
                 reg: float, gen: torch.Generator, fusion: str = "concat") -> None:
        super().__init__()
        if fusion not in ("concat", "sum"):
            raise ValueError(f"fusion: expected 'concat' or 'sum', got {fusion!r}")
        if fusion == "sum" and id_dim not in (0, content_dim):
            raise ValueError(f"fusion='sum' needs dim == content_dim, got dim={id_dim}, content_dim={content_dim}")
        self.content, self.reg, self.id_dim, self.fusion = content, reg, id_dim, fusion
        d_in = content.shape[1]
        self.user_id = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, max(id_dim, 1)), generator=gen))
        self.item_id = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_items, max(id_dim, 1)), generator=gen))
        self.user_c = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, content_dim), generator=gen))
        self.proj = nn.Parameter(nn.init.xavier_normal_(torch.empty(d_in, content_dim), generator=gen))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.content_bias = nn.Parameter(torch.zeros(d_in))

    def item_vectors(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.content if items is None else self.content[items]
        ids = self.item_id if items is None else self.item_id[items]
        bias = (self.item_bias if items is None else self.item_bias[items]) + f @ self.content_bias
        vec = f @ self.proj
        if self.id_dim > 0:
            vec = torch.cat([ids, vec], 1) if self.fusion == "concat" else ids + vec
        return vec, bias

    def user_vectors(self, users: torch.Tensor | None = None) -> torch.Tensor:
        uc = self.user_c if users is None else self.user_c[users]
        if self.id_dim > 0 and self.fusion == "concat":
            uid = self.user_id if users is None else self.user_id[users]
            return torch.cat([uid, uc], 1)
        return uc

    def loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        eu = self.user_vectors(u)
        vi, bi = self.item_vectors(i)
        vj, bj = self.item_vectors(j)
        diff = (eu * (vi - vj)).sum(1) + bi - bj
        reg = eu.square().sum() + vi.square().sum() + vj.square().sum() + bi.square().sum() + bj.square().sum()
        return -nn.functional.logsigmoid(diff).mean() + self.reg * reg / len(u)

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        v, b = self.item_vectors()
        return self.user_vectors(users) @ v.T + b


class VBPR(FactorModel):
    name = "vbpr"
    needs_any_modality = True
    iterative = True
    modalities: tuple[str, ...] | None = None  # None = every modality passed to fit
    defaults: Mapping[str, object] = {
        "dim": 64,  # ID factors, as BPR
        "content_dim": 64,  # projected content factors
        "lr": 0.002,
        "reg": 1e-3,  # L2 on the batch's user/item vectors and biases (best of 0, 1e-4, 1e-3 on ml-100k valid)
        "batch_size": 2048,
        "epochs": 300,
        "eval_every": 1,
        "patience": 10,
        "seed": 2020,
        # "sum": item = gamma_i + E f_i (content is a prior on the ID factors; beat "concat", VBPR's
        # [gamma_i, E f_i] with a separate theta_u, on ml-100k valid NDCG@10: 0.2326 vs 0.2198)
        "fusion": "sum",
    }

    def _id_dim(self) -> int:
        return int(self.params["dim"])

    def _cost(self, n_users, n_items, nnz, dims):
        width = sum(dims.values()) if self.modalities is None else sum(dims.get(m, 0) for m in self.modalities)
        return factor_bytes(n_users, n_items, nnz, self._id_dim(), width, int(self.params["content_dim"])), None, \
            "ID and projected content factors with Adam state, the content matrix, a validation chunk of scores"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        content = torch.from_numpy(content_matrix(features, self.modalities))
        gen = torch_generator(int(p["seed"]))
        module = _VBPR(content, train.shape[0], train.shape[1], self._id_dim(), int(p["content_dim"]),
                       float(p["reg"]), gen, str(p.get("fusion", "concat")))
        warm = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
        train_bpr(module, train, valid, p, np.random.default_rng(int(p["seed"])), self.history, negatives=warm,
                  progress=self.progress, desc=self.name)
        with torch.no_grad():
            cold = torch.from_numpy(np.setdiff1d(np.arange(train.shape[1]), warm))
            module.item_id[cold] = 0.0  # untrained ID parts carry only initial noise
            module.item_bias[cold] = 0.0
            v, b = module.item_vectors()
            u = module.user_vectors()
        self._set_factors(u.detach().numpy(), v.detach().numpy(), b.detach().numpy())


class Text(VBPR):
    name = "text"
    modalities = ("text",)
    needs = ("text",)
    defaults: Mapping[str, object] = {k: v for k, v in VBPR.defaults.items() if k not in ("dim", "fusion")}

    def _id_dim(self) -> int:
        return 0
