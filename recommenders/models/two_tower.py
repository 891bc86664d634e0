"""`two-tower`: contrastive ID-content alignment, the pretraining family of the WWW'24 tutorial
(Zhu, Wu, Zhang, Dong, *Multimodal Pretraining and Generation for Recommendation*, sections on contrastive
and alignment objectives).

Item tower. Every item has a learned ID embedding e_i and a content embedding c_i = A(f_i) of its frozen
features f_i (every modality passed to `fit`, rows L2-normalised and concatenated, as `vbpr`). The adaptor
A follows UniSRec (Hou et al., KDD 2022): a mixture of `experts` parametric-whitening experts
(f - b_k) W_k mixed by a softmax gate on f, so that frozen text (or image) vectors are re-centred and
re-scaled for this catalogue. The fused item vector is v_i = normalise(e_i + c_i) (sum fusion, as `vbpr`).
User tower (`user_tower`): a learned ID embedding, or ("history") the mean of the user's training items'
fused vectors through a learned linear map (YouTube-DNN / FISM style; the predicted item is left out of
its own user's mean while training). Both normalised. score(u, i) = <u, v_i> / tau + beta_i.

Objectives, summed per batch of training (user, item) pairs:
- in-batch InfoNCE on user-item pairs (sampled softmax; the other items of the batch are the negatives;
  a duplicate of the positive item elsewhere in the batch is masked, not treated as a negative), with the
  logQ correction of Yi et al. (RecSys 2019): in-batch negatives are drawn in proportion to popularity, so
  log q_j (the item's share of training pairs) is subtracted from its logit while training; without it
  the model learns to push popular items down (valid NDCG@10 below popularity's on ml-100k);
- an ID-content alignment loss (weight `align_weight`): a symmetric InfoNCE between the normalised e_i and
  c_i of the batch's items, pulling each item's ID embedding towards its own content embedding and away
  from the other items' (CLIP-style; BM3, Zhou et al. WWW 2023, aligns the two views with a cosine loss
  and no negatives; FREEDOM, Zhou & Shen MM 2023, aligns them through a BPR term on the content alone);
- modality dropout (DropoutNet, Volkovs et al. NeurIPS 2017): with probability `id_dropout` an item's
  ID embedding is dropped in the user-item loss, so the content tower alone must rank it. This is what
  makes the content-only vectors of cold items live in the user space.

Serving: items with no training positive get e_i = 0 and beta_i = 0, i.e. they are ranked by content only
(item cold start). A new user (`recommend_from_items`) is the normalised mean of the picked item vectors
(through the history tower's map: exactly a fitted user with those items).
Validation early stopping, Adam and seeding come from `sgd.train_epochs`; validation scores items as they
will be served (cold ones by content alone), over every item or (`valid_items="cold"`) over the items without
a training positive only, which is what the cold-item split evaluates.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from recommenders.models.base import FactorModel
from recommenders.models.sgd import minibatches, torch_generator, train_epochs
from recommenders.models.vbpr import content_matrix
from recommenders.sizing import factor_bytes


class MoEWhitening(nn.Module):
    """UniSRec's adaptor: sum_k softmax(f G)_k * (f - b_k) W_k; (n, d_in) -> (n, dim)."""

    def __init__(self, d_in: int, dim: int, experts: int, gen: torch.Generator) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, d_in))
        self.weight = nn.Parameter(torch.stack([nn.init.xavier_normal_(torch.empty(d_in, dim), generator=gen)
                                                for _ in range(experts)]))  # (K, d_in, dim)
        self.gate = nn.Parameter(torch.zeros(d_in, experts))  # uniform mixture at start

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        g = torch.softmax(f @ self.gate, dim=1)  # (n, K)
        out = torch.einsum("nkd,kde->nke", f.unsqueeze(1) - self.bias.unsqueeze(0), self.weight)  # (n, K, dim)
        return (g.unsqueeze(2) * out).sum(1)


class _TwoTower(nn.Module):
    def __init__(self, content: torch.Tensor, n_users: int, n_items: int, p: Mapping[str, object],
                 gen: torch.Generator) -> None:
        super().__init__()
        dim = int(p["dim"])
        self.content = content  # (n_items, d_in), frozen
        self.tau, self.align_tau = float(p["temperature"]), float(p["align_temperature"])
        self.align_weight, self.id_dropout, self.reg = float(p["align_weight"]), float(p["id_dropout"]), float(p["reg"])
        self.gen = torch.Generator().manual_seed(int(p["seed"]) + 1)  # modality dropout draws
        self.user = nn.Parameter(nn.init.normal_(torch.empty(n_users, dim), std=0.1, generator=gen))
        self.item_id = nn.Parameter(nn.init.normal_(torch.empty(n_items, dim), std=0.1, generator=gen))
        self.adaptor = MoEWhitening(content.shape[1], dim, int(p["experts"]), gen)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.log_q = torch.zeros(n_items)  # set by the caller: log of each item's share of training pairs
        self.user_tower = str(p["user_tower"])
        if self.user_tower not in ("id", "history"):
            raise ValueError(f"user_tower: expected 'id' or 'history', got {self.user_tower!r}")
        self.user_map = nn.Parameter(torch.eye(dim))  # history tower: linear map of the mean item vector
        self.hist: sp.csr_matrix | None = None  # history tower: the (n_users, n_items) training positives
        # set by the caller: items with a training positive (the others are served by content alone), and the
        # items validation ranks (None: all)
        self.warm = torch.ones(n_items, dtype=torch.bool)
        self.valid_items: torch.Tensor | None = None

    def _history(self, users: np.ndarray, v_all: torch.Tensor) -> torch.Tensor:
        """Sum of each user's training items' fused vectors, (len(users), dim), and their counts."""
        sub = self.hist[users].tocoo()
        m = torch.sparse_coo_tensor(torch.from_numpy(np.vstack([sub.row, sub.col]).astype(np.int64)),
                                    torch.from_numpy(sub.data.astype(np.float32)), size=sub.shape,
                                    check_invariants=False)
        return m @ v_all, torch.from_numpy(np.diff(self.hist.indptr)[users].astype(np.float32))

    def user_vectors(self, users: torch.Tensor, leave_out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised user vectors. History tower: the mean of the user's items' fused vectors (without the
        item being predicted, `leave_out`, as FISM does) mapped by `user_map`; ID tower: an embedding."""
        if self.user_tower == "id":
            return F.normalize(self.user[users], dim=1)
        v_all, _, _ = self.item_vectors()
        total, count = self._history(users.numpy(), v_all)
        if leave_out is not None:
            total, count = total - v_all[leave_out], count - 1
        return F.normalize((total / count.clamp(min=1).unsqueeze(1)) @ self.user_map, dim=1)

    def item_vectors(self, items: torch.Tensor | None = None, id_mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused normalised vectors, ID embeddings, content embeddings) of `items` (default all)."""
        e = self.item_id if items is None else self.item_id[items]
        c = self.adaptor(self.content if items is None else self.content[items])
        fused = e * id_mask.unsqueeze(1) + c if id_mask is not None else e + c
        return F.normalize(fused, dim=1), e, c

    def loss(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        keep = None
        if self.training and self.id_dropout > 0:
            keep = (torch.rand(len(i), generator=self.gen) >= self.id_dropout).float()
        v, e, c = self.item_vectors(i, keep)
        eu = self.user_vectors(u, leave_out=i)
        logits = eu @ v.T / self.tau + (self.item_bias[i] - self.log_q[i]).unsqueeze(0)  # (B, B)
        same = i.unsqueeze(0) == i.unsqueeze(1)
        logits = logits.masked_fill(same & ~torch.eye(len(i), dtype=torch.bool), -torch.inf)
        target = torch.arange(len(i))
        rec = F.cross_entropy(logits, target)
        user_l2 = self.user[u].square().sum() if self.user_tower == "id" else 0.0
        out = rec + self.reg * (user_l2 + e.square().sum()) / len(u)
        if self.align_weight > 0:
            items, first = np.unique(i.numpy(), return_index=True)  # one row per distinct item
            first = torch.from_numpy(first)
            en, cn = F.normalize(e[first], dim=1), F.normalize(c[first], dim=1)
            a = en @ cn.T / self.align_tau
            t = torch.arange(len(first))
            out = out + self.align_weight * 0.5 * (F.cross_entropy(a, t) + F.cross_entropy(a.T, t))
        return out

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Validation scores, (len(users), n_items), as they will be served: items without a training positive
        by their content alone (ID embedding and bias zeroed); items outside `valid_items` at -inf."""
        warm = self.warm.float()
        v, _, _ = self.item_vectors(id_mask=warm)
        scores = self.user_vectors(users) @ v.T / self.tau + self.item_bias * warm
        if self.valid_items is not None:
            scores = scores.masked_fill(~self.valid_items, -torch.inf)
        return scores


class TwoTower(FactorModel):
    name = "two-tower"
    needs_any_modality = True
    iterative = True
    defaults: Mapping[str, object] = {
        "dim": 64,  # as the other factor models
        "experts": 4,  # UniSRec's MoE adaptor size (its default is 8 for 768-d BERT; 4 suffice for 384-d MiniLM)
        "temperature": 0.1,  # InfoNCE temperature on cosine scores
        "align_weight": 0.1,  # weight of the ID-content alignment InfoNCE
        "align_temperature": 0.2,
        "id_dropout": 0.2,  # share of batch items ranked by content alone (cold-start training)
        "reg": 0.0,  # L2 on the batch's user and ID embeddings
        # "history": the mean of the user's item vectors (leave-the-target-out while training, FISM-style)
        # through a learned linear map, so a new user's fold-in is exact; it validated well above "id" (a
        # learned user embedding) on ml-100k: valid NDCG@10 0.2375 after 5 epochs against 0.1994 at best
        "user_tower": "history",
        # the items early stopping ranks: "all" (RecBole's protocol) or "cold", the items without a training
        # positive only (the cold-item split's protocol: its candidates are the held-out items)
        "valid_items": "all",
        "lr": 0.002,
        "batch_size": 1024,  # in-batch negatives: 1023 per positive
        "epochs": 300,
        "eval_every": 1,
        "patience": 10,
        "seed": 2020,
    }

    def _cost(self, n_users, n_items, nnz, dims):
        width = sum(dims.values())
        dim = int(self.params["dim"])
        extra = 4.0 * n_items * dim * 3 + 4.0 * int(self.params["batch_size"]) ** 2 * 4
        return factor_bytes(n_users, n_items, nnz, dim, width, dim) + extra, None, \
            "ID and content towers with Adam state, the content matrix, a validation chunk of scores"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        for key in ("temperature", "align_temperature"):
            if float(p[key]) <= 0:
                raise ValueError(f"{key}: expected a positive temperature, got {p[key]}")
        if not 0 <= float(p["id_dropout"]) < 1:
            raise ValueError(f"id_dropout: expected a probability in [0, 1), got {p['id_dropout']}")
        if p["valid_items"] not in ("all", "cold"):
            raise ValueError(f"valid_items: expected 'all' or 'cold', got {p['valid_items']!r}")
        warm = np.diff(train.tocsc().indptr) > 0
        if p["valid_items"] == "cold" and valid is not None and not valid[:, ~warm].nnz:
            raise ValueError("valid_items: 'cold' ranks the items without a training positive, but no validation "
                             "positive is such an item (use 'all', or a cold-item split)")
        content = torch.from_numpy(content_matrix(features))
        gen = torch_generator(int(p["seed"]))
        module = _TwoTower(content, train.shape[0], train.shape[1], p, gen)
        module.hist = train.tocsr()
        module.warm = torch.from_numpy(warm)
        if p["valid_items"] == "cold":
            module.valid_items = torch.from_numpy(~warm)
        counts = np.asarray(train.sum(0), dtype=np.float64).ravel()
        module.log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / counts.sum()).astype(np.float32))
        coo = train.tocoo()
        pos_u, pos_i = coo.row.astype(np.int64), coo.col.astype(np.int64)
        batches = minibatches(np.random.default_rng(int(p["seed"])), int(p["batch_size"]), pos_u, pos_i)
        train_epochs(module, batches, train, valid, p, self.history, progress=self.progress, desc=self.name)
        with torch.no_grad():
            cold = torch.from_numpy(np.flatnonzero(~warm))
            module.item_id[cold] = 0.0  # never trained: only initial noise; cold items are content-only
            module.item_bias[cold] = 0.0
            v, _, _ = module.item_vectors()
            u = module.user_vectors(torch.arange(train.shape[0]))
        tau = float(p["temperature"])
        self._set_factors(u.numpy(), v.numpy() / tau, module.item_bias.detach().numpy())
        self.user_map = module.user_map.detach().numpy().astype(np.float64)

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        """A new user is the normalised mean of the picked items' (unit) vectors (history tower: mapped by
        `user_map`, exactly what a fitted user with those items gets), scored like a fitted user."""
        tau = float(self.params["temperature"])
        u = (self.V[items] * tau).mean(0)
        if self.params["user_tower"] == "history":
            u = u @ self.user_map
        u /= max(float(np.linalg.norm(u)), 1e-12)
        return self._scores(u)

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "user_map": self.user_map}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.user_map = np.asarray(arrays["user_map"], dtype=np.float64)
