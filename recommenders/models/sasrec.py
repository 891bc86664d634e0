"""SASRec (Kang & McAuley, ICDM 2018): next-item prediction with causal self-attention over a user's
time-ordered history.

- `sasrec`: ID-only item embeddings (normal, std 0.02), as published.
- `sasrec-content`: the same network whose item embeddings start from the items' content: the frozen
  features (every modality, rows L2-normalised, concatenated) are centred and projected on their first
  `dim` principal axes (the closed-form, linear part of UniSRec's whitening adaptor, Hou et al. KDD 2022;
  variance ratios are kept rather than equalised so that noise axes are not amplified), then scaled to
  the ID initialisation's std. Training then adapts them. Items that occur in no training sequence keep their content vector,
  so they can still be ranked (an ID-only model has only noise for them).

Network (as RecBole's SASRec): item + learned position embeddings, LayerNorm, dropout, `layers` pre-LN
transformer blocks with `heads` heads and causal masking; the output at the last position is scored
against the item embedding table (shared input/output embeddings) with a full softmax cross-entropy over
the catalogue (RecBole's loss_type "CE"). Each user's sequence is cut from its end into windows of
`max_len` + 1 items, and every position of a window is a training target.

Histories come from `fit`'s interactions ordered by `timestamp` (row order when there is none); items
with weight <= 0 are left out of the sequence. `score(u)` reads the last `max_len` items of the user's
history; `with_history(frame)` returns a copy whose histories also hold `frame`'s interactions (e.g. the
validation item before scoring the test item of a leave-one-out split, as RecBole does), without
refitting. `recommend_from_items(ids)` treats `ids` as a new user's history in the given order.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from recommenders.errors import ModelFitError
from recommenders.models.base import Recommender
from recommenders.models.sgd import minibatches, train_epochs
from recommenders.models.vbpr import content_matrix
from recommenders.sizing import factor_bytes

INIT_STD = 0.02


def content_init(features: Mapping[str, np.ndarray], dim: int, scale: float = INIT_STD) -> np.ndarray:
    """(n_items, dim) initial item embeddings from content: the centred features' first `dim` principal
    components (variance ratios kept, so the dominant content axes dominate), scaled to overall std `scale`."""
    f = content_matrix(features).astype(np.float64)
    f -= f.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = min(dim, len(s))
    out = np.zeros((f.shape[0], dim))
    out[:, :keep] = u[:, :keep] * s[:keep]
    std = out.std()
    return (out * (scale / std if std > 0 else 0.0)).astype(np.float32)


class _SASRec(nn.Module):
    def __init__(self, n_items: int, p: Mapping[str, Any], init: np.ndarray | None, gen: torch.Generator) -> None:
        super().__init__()
        dim, self.max_len, self.n_items = int(p["dim"]), int(p["max_len"]), n_items
        emb = torch.empty(n_items + 1, dim).normal_(0.0, INIT_STD, generator=gen)
        if init is not None:
            emb[:n_items] = torch.from_numpy(init)
        emb[n_items] = 0.0
        self.item = nn.Parameter(emb)  # row n_items is the padding
        self.pos = nn.Parameter(torch.empty(self.max_len, dim).normal_(0.0, INIT_STD, generator=gen))
        self.norm_in = nn.LayerNorm(dim)
        self.drop = nn.Dropout(float(p["dropout"]))
        layer = nn.TransformerEncoderLayer(dim, int(p["heads"]), dim_feedforward=dim * 2, dropout=float(p["dropout"]),
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, int(p["layers"]), enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(dim)
        with torch.no_grad():  # seeded init of the transformer weights too
            for name, w in self.blocks.named_parameters():
                if w.dim() > 1:
                    w.normal_(0.0, INIT_STD, generator=gen)
                elif "bias" in name:
                    w.zero_()
        self.register_buffer("causal", torch.triu(torch.ones(self.max_len, self.max_len, dtype=torch.bool), 1),
                             persistent=False)
        self.sequences: list[np.ndarray] = []  # training histories of the fitted users (for validation)
        self.windows: tuple[np.ndarray, np.ndarray] | None = None

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item indices -> (B, L, dim)."""
        L = seq.shape[1]
        pad = seq == self.n_items
        x = self.item[seq] + self.pos[-L:]
        x = self.drop(self.norm_in(x)) * (~pad).unsqueeze(2)
        h = self.blocks(x, mask=self.causal[:L, :L], src_key_padding_mask=None)
        return self.norm_out(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item[: self.n_items].T

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = self.logits(self.hidden(inputs))  # (B, L, n_items)
        mask = targets != self.n_items
        return nn.functional.cross_entropy(out[mask], targets[mask])

    def encode(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Last-position hidden state (len(histories), dim) of each history (its last max_len items)."""
        batch = torch.full((len(histories), self.max_len), self.n_items, dtype=torch.long)
        for r, h in enumerate(histories):
            h = np.asarray(h[-self.max_len:], dtype=np.int64)
            if len(h):
                batch[r, -len(h):] = torch.from_numpy(h)
        return self.hidden(batch)[:, -1]

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode([self.sequences[int(u)] for u in users]))


def _windows(sequences: Sequence[np.ndarray], max_len: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Training (inputs, targets), each (n_windows, max_len), left-padded; windows cut from each sequence's end."""
    ins, outs = [], []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            w = seq[start:end]
            x = np.full(max_len, pad, dtype=np.int64)
            y = np.full(max_len, pad, dtype=np.int64)
            x[max_len - (len(w) - 1):] = w[:-1]
            y[max_len - (len(w) - 1):] = w[1:]
            ins.append(x)
            outs.append(y)
            end = start + 1  # the next window ends where this one's first input was
            if start == 0:
                break
    if not ins:
        raise ModelFitError("interactions: sasrec needs at least one user with two or more positives in time order")
    return np.stack(ins), np.stack(outs)


class SASRec(Recommender):
    name = "sasrec"
    iterative = True
    content_init = False
    defaults: Mapping[str, object] = {
        "dim": 64,
        "layers": 2,
        "heads": 2,
        "max_len": 50,  # RecBole's MAX_ITEM_LIST_LENGTH for ml-100k
        "dropout": 0.2,
        "lr": 0.001,
        "batch_size": 128,  # windows per step
        "epochs": 200,
        "eval_every": 1,
        "patience": 10,
        "seed": 2020,
    }

    def fit(self, interactions: pd.DataFrame, item_ids: Sequence[str], features: Mapping[str, np.ndarray] | None = None,
            valid: pd.DataFrame | None = None, progress: bool = False,
            memory_budget: int | None = None) -> "SASRec":
        self._frame = interactions  # read by _fit for the time order, then dropped
        try:
            return super().fit(interactions, item_ids, features, valid, progress,  # type: ignore[return-value]
                               memory_budget=memory_budget)
        finally:
            self._frame = None

    def _ordered_histories(self, frame: pd.DataFrame, base: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per fitted user, `base` (or nothing) followed by `frame`'s positives in time order."""
        f = frame.assign(_row=np.arange(len(frame)))
        if "weight" in f.columns:
            f = f[pd.to_numeric(f["weight"]) > 0]
        u = f["user_id"].astype(str).map(self._user_index)
        i = f["item_id"].astype(str).map(self._item_index)
        ok = (u.notna() & i.notna()).to_numpy()
        sort_cols = ["_u", "timestamp", "_row"] if "timestamp" in f.columns else ["_u", "_row"]
        g = f[ok].assign(_u=u[ok].astype(np.int64), _i=i[ok].astype(np.int64)).sort_values(sort_cols, kind="stable")
        out = [np.empty(0, dtype=np.int64) for _ in self.user_ids] if base is None else [b.copy() for b in base]
        for user, items in g.groupby("_u", sort=False)["_i"]:
            out[int(user)] = np.concatenate([out[int(user)], items.to_numpy(dtype=np.int64)])
        return out

    def _cost(self, n_users, n_items, nnz, dims):
        dim, batch, length = int(self.params["dim"]), int(self.params["batch_size"]), int(self.params["max_len"])
        logits = 3.0 * 4 * batch * length * n_items  # (batch, max_len, n_items) logits, softmax and gradient
        return factor_bytes(n_users, n_items, nnz, dim) + logits + 16.0 * nnz * length / 8, None, \
            "item table with Adam state and (batch x max_len x n_items) logits: 12 bytes each"

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        if int(p["dim"]) % int(p["heads"]):
            raise ValueError(f"heads: expected a divisor of dim ({p['dim']}), got {p['heads']}")
        self.sequences = self._ordered_histories(self._frame)
        gen = torch.Generator().manual_seed(int(p["seed"]))
        init = content_init(features, int(p["dim"])) if self.content_init else None
        module = _SASRec(train.shape[1], p, init, gen)
        module.sequences = self.sequences
        inputs, targets = _windows(self.sequences, int(p["max_len"]), train.shape[1])
        batches = minibatches(np.random.default_rng(int(p["seed"])), int(p["batch_size"]), inputs, targets)
        torch.manual_seed(int(p["seed"]))  # nn.Dropout draws from the global generator: seed it for reproducibility
        train_epochs(module, batches, train, valid, p, self.history, progress=self.progress, desc=self.name)
        module.eval()
        self.module = module

    def _score_one(self, user: int) -> np.ndarray:
        return self._score_history(self.sequences[user])

    def _score_history(self, history: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module.logits(self.module.encode([history]))[0].double().numpy()

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self._score_history(np.asarray(items, dtype=np.int64))

    def recommend_from_items(self, item_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
                             ) -> tuple[list[str], np.ndarray]:
        """Fold-in of a new user whose history is `item_ids` in this order (oldest first; repeats keep the last)."""
        k = self._check_k(k)
        self._require_fitted()
        if isinstance(item_ids, str) or len(item_ids) == 0:
            raise ValueError(f"item_ids: expected a non-empty sequence of item ids, got {item_ids!r}")
        order = [self.item_index(i) for i in item_ids]
        last = {i: n for n, i in enumerate(order)}
        history = np.array([i for n, i in enumerate(order) if last[i] == n], dtype=np.int64)
        return self._rank(self._fold_in(history), k, np.unique(history) if exclude_seen else None)

    def with_history(self, frame: pd.DataFrame) -> "SASRec":
        """A copy whose users' histories end with `frame`'s positives (time-ordered); the weights are shared."""
        self._require_fitted()
        other = copy.copy(self)
        other.sequences = self._ordered_histories(frame, self.sequences)
        return other

    def _state(self) -> dict[str, np.ndarray]:
        out = {f"w__{k}": v.detach().numpy() for k, v in self.module.state_dict().items()}
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        out["seq_indptr"] = np.concatenate([[0], np.cumsum(lengths)])
        out["seq_items"] = np.concatenate(self.sequences) if len(self.sequences) else np.empty(0, np.int64)
        return out

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        n_items = len(self.item_ids)
        module = _SASRec(n_items, self.params, None, torch.Generator().manual_seed(0))
        module.load_state_dict({k[3:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("w__")})
        module.eval()
        ptr, items = arrays["seq_indptr"], arrays["seq_items"]
        self.sequences = [items[ptr[u]: ptr[u + 1]].astype(np.int64) for u in range(len(ptr) - 1)]
        module.sequences = self.sequences
        self.module = module


class SASRecContent(SASRec):
    name = "sasrec-content"
    content_init = True
    needs = ("text",)
