"""`blend`: a validation-tuned score ensemble of an item-item model and content-aware factor models.

score(u) = z(base(u)) + sum_k weights[k] * z(partners[k](u)), where z standardises a user's scores over the
catalogue (mean 0, standard deviation 1), so the models' scales do not matter and the weights are the only
knobs. Defaults: base `ease-text` (EASE with the text Gram term: strong on warm items), partners `freedom`
(LightGCN fused with the frozen text kNN item graph) and `two-tower` (the contrastively aligned ID-content
tower), weights 0.75 and 1.5: the best valid NDCG@10 of a weight grid on ml-100k (BENCHMARKS.md, issue 16).
Linear blending of heterogeneous recommenders is the classic ensemble of the Netflix Prize (e.g. Koren
2009); it is how the tutorial's pretrained content models are combined with a collaborative scorer here.
The weights (and the components' parameters) are chosen on validation NDCG@10 only (`recommenders.search`);
each iterative partner early-stops on the validation split.

A new user (`recommend_from_items`) is folded into every component and blended the same way.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender
from recommenders.sizing import format_bytes


def _z(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    mean = scores[finite].mean() if finite.any() else 0.0
    std = scores[finite].std() if finite.any() else 0.0
    return (scores - mean) / (std if std > 0 else 1.0)


class Blend(Recommender):
    name = "blend"
    iterative = True  # the partners early-stop on `valid`
    defaults: Mapping[str, object] = {
        "base": "ease-text",
        "base_params": {},
        "partners": ["freedom", "two-tower"],
        # two-tower: larger batches and lr, at most 15 epochs - what fitted in the CPU time of the ml-100k runs
        "partner_params": [{}, {"batch_size": 2048, "lr": 0.004, "epochs": 15}],
        "weights": [0.75, 1.5],  # partner shares after standardisation (best valid NDCG@10 of a grid on ml-100k)
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
        if not (len(p["partners"]) == len(p["partner_params"]) == len(p["weights"])):
            raise ValueError(f"partners, partner_params, weights: expected lists of one length, got "
                             f"{len(p['partners'])}, {len(p['partner_params'])}, {len(p['weights'])}")
        for w in p["weights"]:
            if not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
                raise ValueError(f"weights: expected non-negative numbers, got {p['weights']!r}")

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

    def params_after_probe(self) -> dict[str, Any]:
        """Parameters for a refit on all data: each iterative partner gets its own best validation epoch."""
        partner_params = []
        for c, params in zip(self.parts[1:], self.params["partner_params"]):
            params = dict(params)
            scored = [h for h in c.history if "valid_ndcg@10" in h]
            if c.iterative and scored:  # the best epoch, the earliest on a tie (as training.best_epoch)
                params["epochs"] = int(max(scored, key=lambda h: (h["valid_ndcg@10"], -h["epoch"]))["epoch"])
            partner_params.append(params)
        return {"partner_params": partner_params}

    def _mix(self, scores: list[np.ndarray]) -> np.ndarray:
        out = _z(np.asarray(scores[0], dtype=np.float64))
        for w, s in zip(self.params["weights"], scores[1:]):
            out = out + float(w) * _z(np.asarray(s, dtype=np.float64))
        return out

    def _score_one(self, user: int) -> np.ndarray:
        return self._mix([c._score_one(user) for c in self.parts])

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self._mix([c._fold_in(items) for c in self.parts])

    def _state(self) -> dict[str, np.ndarray]:
        return {f"c{n}__{k}": v for n, c in enumerate(self.parts) for k, v in c._state().items()}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.parts = self._components()
        for n, c in enumerate(self.parts):
            prefix = f"c{n}__"
            c._restore({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
