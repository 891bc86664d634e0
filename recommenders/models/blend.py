"""`blend`: a validation-tuned score ensemble of an item-item model and content-aware factor models.

score(u) = z(base(u)) + sum_k w_k * z(partners[k](u)), where z standardises a user's scores (mean 0, standard
deviation 1 over the items the user has not interacted with, `standardise="unseen"`, or over the whole
catalogue, "all"), so the models' scales do not matter and the weights are the only knobs. Defaults: base
`ease-text` (EASE with the text and centred-rating Gram terms: strong on warm items), partners `freedom`
(LightGCN fused with the frozen text kNN item graph), `two-tower` (the contrastively aligned ID-content tower)
and `lowpass` (GF-CF's ideal low-pass filter: the catalogue's leading taste directions). Linear blending of
heterogeneous recommenders is the classic ensemble of the Netflix Prize (e.g. Koren 2009); it is how the
tutorial's pretrained content models are combined with a collaborative scorer here.

Weights (`weights`): fixed numbers, or "valid" (the default): `fit` chooses them itself on the validation
split it is given, as the best valid NDCG@10 (full ranking, train items excluded) over every combination of
`weight_grid` per partner, the first in grid order on a tie. No test data is ever passed to `fit`, so the
choice cannot see it. A fit without a validation split needs fixed weights. `params_after_probe` hands the
chosen weights (and each iterative partner's best epoch) to the refit on all data that
`recommenders.training.train_model` does for serving, so the served model uses numbers chosen on its probe's
hold-out. Each iterative partner early-stops on the same validation split.

A new user (`recommend_from_items`) is folded into every component and blended the same way.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.errors import ModelFitError
from recommenders.models.base import Recommender
from recommenders.sizing import format_bytes, valid_chunk_users


def _z(scores: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """`scores` standardised by the mean and standard deviation of its finite entries outside `skip` (indices)."""
    finite = np.isfinite(scores)
    if skip is not None and len(skip) and len(skip) < len(scores):
        finite[skip] = False
    mean = scores[finite].mean() if finite.any() else 0.0
    std = scores[finite].std() if finite.any() else 0.0
    return (scores - mean) / (std if std > 0 else 1.0)


def _non_negative(w: object) -> bool:
    return isinstance(w, (int, float)) and not isinstance(w, bool) and bool(np.isfinite(w)) and w >= 0


class Blend(Recommender):
    name = "blend"
    iterative = True  # the partners early-stop on `valid`
    uses_ratings = True  # handed to the components that read them (ease-text's centred-rating term)
    defaults: Mapping[str, object] = {
        "base": "ease-text",
        "base_params": {},
        # lowpass: the third partner since issue 27 (+0.0016 mean valid NDCG@10 over ml-100k seeds 2020, 2, 3)
        "partners": ["freedom", "two-tower", "lowpass"],
        # two-tower: larger batches and lr, at most 15 epochs (its valid NDCG@10 peaked at epochs 10-14 on ml-100k
        # seeds 2020, 1, 2, 3 with a 40-epoch cap, so the cap does not bind there)
        "partner_params": [{}, {"batch_size": 2048, "lr": 0.004, "epochs": 15}, {}],
        # partner shares after standardisation: "valid" = chosen by `fit` on its validation split (the same rule
        # for every split, seed and refit, no number carried over from one ml-100k seed), or a list of numbers
        "weights": "valid",
        # the values tried per partner when weights="valid" (every combination: 10^3 on ml-100k, ~40 s); this grid
        # generalised best across valid halves (`bench.bench_pretrain blend-rules`, BENCHMARKS.md, issue 27)
        "weight_grid": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0],
        # "unseen": z uses the mean and spread of the items the user has not interacted with (the ones that can be
        # recommended; a model's scores of the user's own items are outliers that inflate the spread unequally
        # across models); "all": the whole catalogue. "unseen" generalised better across valid halves (issue 27)
        "standardise": "unseen",
        "seed": 2020,  # passed to every partner that takes a seed
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from recommenders.models import MODEL_NAMES

        p = self.params
        names = [p["base"], *p["partners"]]
        for name in names:
            if name not in MODEL_NAMES or name == self.name:
                raise ValueError(f"base/partners: expected model names other than 'blend' from {list(MODEL_NAMES)}, "
                                 f"got {name!r}")
        if len(p["partners"]) != len(p["partner_params"]):
            raise ValueError(f"partners, partner_params: expected lists of one length, got "
                             f"{len(p['partners'])}, {len(p['partner_params'])}")
        if p["weights"] != "valid":
            if not isinstance(p["weights"], (list, tuple)) or len(p["weights"]) != len(p["partners"]):
                raise ValueError(f"weights: expected 'valid' or a list of {len(p['partners'])} numbers (one per "
                                 f"partner), got {p['weights']!r}")
            if not all(_non_negative(w) for w in p["weights"]):
                raise ValueError(f"weights: expected non-negative numbers, got {p['weights']!r}")
        if p["standardise"] not in ("unseen", "all"):
            raise ValueError(f"standardise: expected 'unseen' or 'all', got {p['standardise']!r}")
        grid = p["weight_grid"]
        if not isinstance(grid, (list, tuple)) or not grid or not all(_non_negative(w) for w in grid):
            raise ValueError(f"weight_grid: expected a non-empty list of non-negative numbers, got {grid!r}")
        self.weights_: list[float] | None = None  # the weights in use once fitted
        self.weight_search: list[dict[str, Any]] = []  # weights="valid": each combination tried, its valid NDCG@10

    def _components(self) -> list[Recommender]:
        from recommenders.models import create_model, model_class

        p = self.params
        out = [create_model(str(p["base"]), **dict(p["base_params"]))]
        for name, params in zip(p["partners"], p["partner_params"]):
            params = dict(params)
            if "seed" in model_class(name).defaults:
                params.setdefault("seed", p["seed"])
            out.append(create_model(str(name), **params))
        for c in out:
            c.item_ids, c.user_ids = self.item_ids, self.user_ids
            c._item_index, c._user_index, c._seen = self._item_index, self._user_index, self._seen
            c._train_ratings = self._train_ratings if c.uses_ratings else None
        return out

    def _check_features(self, features, n_items):  # type: ignore[override]
        feats = super()._check_features(features, n_items)
        for c in self._components():
            c._check_features(feats, n_items)  # each component's own feature requirements
        return feats

    def _cost(self, n_users, n_items, nnz, dims):
        costs = [c.cost(n_users, n_items, nnz, dims) for c in self._components()]
        return float(sum(c.peak_bytes for c in costs)), (None if any(c.fit_seconds is None for c in costs)
                                                           else sum(c.fit_seconds for c in costs)), \
            " + ".join(f"{c.model} {format_bytes(c.peak_bytes)}" for c in costs)

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        self.parts = self._components()
        for c in self.parts:
            c.progress = self.progress
            c._fit(train, features, valid if c.iterative else None)
        # one validation row per epoch of the longest partner, so `training.train_model` sees a history
        self.history = max((c.history for c in self.parts), key=len)
        if self.params["weights"] != "valid":
            self.weights_ = [float(w) for w in self.params["weights"]]
        elif valid is None:
            raise ModelFitError("weights: 'valid' chooses the partner weights on a validation split; pass valid= "
                                "to fit, or fixed weights, e.g. weights=[0.75, 1.5]")
        else:
            self.weights_ = self._choose_weights(train, valid)

    def _choose_weights(self, train: sp.csr_matrix, valid: sp.csr_matrix) -> list[float]:
        """The combination of `weight_grid` values (one per partner) with the best valid NDCG@10; the first in
        grid order on a tie. Users are scored in chunks (`sizing.valid_chunk_users`), as in early stopping."""
        import itertools

        import torch

        from recommenders.models.sgd import ndcg_at_k

        grid = [float(w) for w in self.params["weight_grid"]]
        combos = np.array(list(itertools.product(grid, repeat=len(self.parts) - 1)))  # (combinations, partners)
        users = np.flatnonzero(np.diff(valid.indptr) > 0)
        if not len(users):
            raise ModelFitError("valid: no user has a validation positive; cannot choose the blend weights")
        totals = np.zeros(len(combos))
        chunk = valid_chunk_users(train.shape[1])
        for start in range(0, len(users), chunk):
            part = users[start: start + chunk]
            z = np.stack([np.stack([self._standardise(c._score_one(int(u)), self._seen[int(u)].indices)
                                    for u in part]) for c in self.parts])  # (components, users, items)
            for n, w in enumerate(combos):
                mixed = z[0] + np.tensordot(w, z[1:], axes=1)
                totals[n] += ndcg_at_k(torch.from_numpy(mixed), train, valid, part) * len(part)
        best = int(np.argmax(totals))  # argmax: the first maximum
        self.weight_search = [{"weights": w.tolist(), "valid_ndcg@10": t / len(users)} for w, t in zip(combos, totals)]
        return combos[best].tolist()

    def params_after_probe(self) -> dict[str, Any]:
        """Parameters for a refit on all data: each iterative partner gets its own best validation epoch."""
        partner_params = []
        for c, params in zip(self.parts[1:], self.params["partner_params"]):
            params = dict(params)
            scored = [h for h in c.history if "valid_ndcg@10" in h]
            if c.iterative and scored:  # the best epoch, the earliest on a tie (as training.best_epoch)
                params["epochs"] = int(max(scored, key=lambda h: (h["valid_ndcg@10"], -h["epoch"]))["epoch"])
            partner_params.append(params)
        return {"partner_params": partner_params, "weights": list(self.weights_)}

    def _standardise(self, scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
        return _z(np.asarray(scores, dtype=np.float64), seen if self.params["standardise"] == "unseen" else None)

    def _mix(self, scores: list[np.ndarray], seen: np.ndarray) -> np.ndarray:
        out = self._standardise(scores[0], seen)
        for w, s in zip(self.weights_, scores[1:]):
            out = out + float(w) * self._standardise(s, seen)
        return out

    def _score_one(self, user: int) -> np.ndarray:
        return self._mix([c._score_one(user) for c in self.parts], self._seen[user].indices)

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self._mix([c._fold_in(items) for c in self.parts], np.asarray(items, dtype=np.int64))

    def _state(self) -> dict[str, np.ndarray]:
        state = {f"c{n}__{k}": v for n, c in enumerate(self.parts) for k, v in c._state().items()}
        return {**state, "weights": np.asarray(self.weights_, dtype=np.float64)}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.parts = self._components()
        for n, c in enumerate(self.parts):
            prefix = f"c{n}__"
            c._restore({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        if "weights" in arrays:
            self.weights_ = arrays["weights"].tolist()
        else:  # saved before issue 27: fixed weights in params, z over the whole catalogue - scored as it was then
            self.weights_ = [float(w) for w in self.params["weights"]]
            self.params["standardise"] = "all"
