"""`blend`: a validation-tuned score ensemble of an item-item model and a content-aware factor model.

score(u) = z(base(u)) + weight * z(partner(u)), where z standardises a user's scores over the catalogue
(mean 0, standard deviation 1), so the two models' scales do not matter and `weight` is the only knob.
Defaults: base `ease-text` (EASE with the text Gram term: strong on warm items) and partner `freedom`
(LightGCN over the user-item graph fused with the frozen text kNN item graph), the pair with the best
valid NDCG@10 on ml-100k (partner `two-tower`, the aligned content tower, validated lower; see
BENCHMARKS.md). Linear score blending of heterogeneous recommenders is the classic ensemble of the Netflix Prize
(e.g. Koren 2009) and is how the tutorial's pretrained content models are usually combined with a
collaborative scorer; `weight` (and the components' parameters) are chosen on validation NDCG@10 only
(`recommenders.search`). The partner early-stops on the validation split like any iterative model.

A new user (`recommend_from_items`) is folded into both components and blended the same way.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from recommenders.models.base import Recommender


def _z(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    mean = scores[finite].mean() if finite.any() else 0.0
    std = scores[finite].std() if finite.any() else 0.0
    return (scores - mean) / (std if std > 0 else 1.0)


class Blend(Recommender):
    name = "blend"
    iterative = True  # the partner early-stops on `valid`
    defaults: Mapping[str, object] = {
        "base": "ease-text",
        "base_params": {},
        "partner": "freedom",
        "partner_params": {},
        "weight": 0.5,  # partner share after standardisation (best of 0.1-0.8 on ml-100k valid NDCG@10)
        "epochs": None,  # None: the partner's own default; set by training.train_model after its probe fit
        "seed": 2020,  # passed to the partner
    }

    def _components(self) -> tuple[Recommender, Recommender]:
        from recommenders.models import create_model, model_class

        p = self.params
        if p["base"] == self.name or p["partner"] == self.name:
            raise ValueError("base/partner: a blend cannot contain a blend")
        partner_params = dict(p["partner_params"])
        base = create_model(str(p["base"]), **dict(p["base_params"]))
        partner_cls_defaults = model_class(str(p["partner"])).defaults
        if "seed" in partner_cls_defaults:
            partner_params.setdefault("seed", p["seed"])
        if p["epochs"] is not None and "epochs" in partner_cls_defaults:
            partner_params["epochs"] = int(p["epochs"])
        partner = create_model(str(p["partner"]), **partner_params)
        for c in (base, partner):
            c.item_ids, c.user_ids = self.item_ids, self.user_ids
            c._item_index, c._user_index, c._seen = self._item_index, self._user_index, self._seen
        return base, partner

    def _check_features(self, features, n_items):  # type: ignore[override]
        feats = super()._check_features(features, n_items)
        base, partner = self._components()
        for c in (base, partner):
            c._check_features(feats, n_items)  # each component's own feature requirements
        return feats

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        weight = float(self.params["weight"])
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"weight: expected a non-negative number, got {self.params['weight']!r}")
        self.base, self.partner = self._components()
        self.base._fit(train, features, valid if self.base.iterative else None)
        self.partner.progress = self.progress
        self.partner._fit(train, features, valid if self.partner.iterative else None)
        self.history = self.partner.history  # the epochs are the partner's

    def _mix(self, base: np.ndarray, partner: np.ndarray) -> np.ndarray:
        return _z(np.asarray(base, dtype=np.float64)) + float(self.params["weight"]) * _z(
            np.asarray(partner, dtype=np.float64))

    def _score_one(self, user: int) -> np.ndarray:
        return self._mix(self.base._score_one(user), self.partner._score_one(user))

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        return self._mix(self.base._fold_in(items), self.partner._fold_in(items))

    def _state(self) -> dict[str, np.ndarray]:
        out = {f"base__{k}": v for k, v in self.base._state().items()}
        out.update({f"partner__{k}": v for k, v in self.partner._state().items()})
        return out

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.base, self.partner = self._components()
        for prefix, c in (("base__", self.base), ("partner__", self.partner)):
            c._restore({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from recommenders.models import MODEL_NAMES

        for key in ("base", "partner"):
            if self.params[key] not in MODEL_NAMES:
                raise ValueError(f"{key}: expected one of {list(MODEL_NAMES)}, got {self.params[key]!r}")
