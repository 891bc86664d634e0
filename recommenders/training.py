"""Training for serving: `train_model(dataset, name, ...)` fits on every interaction (plus the store's logs).

Iterative models (bpr, lightgcn, vbpr, text, two-tower, freedom, sasrec; blend: each partner) pick their number of epochs by validation early stopping:
a seeded per-user 9:1 hold-out of the data is used to find the best epoch (valid NDCG@10, patience 10),
then the model is refitted on all the data for exactly that many epochs, so nothing is left out of the
served model. Closed-form and neighbourhood models (pop, itemknn, ease) fit once on everything.

Store logs (`extra_interactions`: user_id, item_id, weight, timestamp) are appended to the dataset's
interactions. weight > 0 (a like, a click) is a positive; weight <= 0 (a dislike) is not a positive but
the item stays "seen" for that user, so it is never recommended to them again (see models/base.py).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from recommenders.data import Dataset
from recommenders.errors import ModelFitError
from recommenders.models import FEATURE_MODELS, create_model, model_class
from recommenders.splits import random_split


def merge_interactions(dataset: Dataset, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Dataset interactions (weight 1, and their `rating` where the dataset has one) followed by `extra` rows;
    unknown items are rejected, nothing merged."""
    base = dataset.interactions
    frame = pd.DataFrame({
        "user_id": base["user_id"].astype(str),
        "item_id": base["item_id"].astype(str),
        "weight": np.ones(len(base)),
        "timestamp": base["timestamp"].astype(np.int64) if "timestamp" in base.columns else np.zeros(len(base), np.int64),
    })
    if "rating" in base.columns:  # for the models that read them (ease-text; `fit` parses them); logged rows have none
        frame["rating"] = base["rating"].to_numpy()
    if extra is None or len(extra) == 0:
        return frame
    missing = [c for c in ("user_id", "item_id") if c not in extra.columns]
    if missing:
        raise ModelFitError(f"extra_interactions: missing column(s) {missing}; expected user_id, item_id, weight, "
                            f"timestamp, got {list(extra.columns)}")
    items = extra["item_id"].astype(str)
    unknown = ~items.isin(set(dataset.item_ids))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ModelFitError(f"extra_interactions: row {row + 1}, column 'item_id': {items.iloc[row]!r} is not an "
                            f"item of dataset {dataset.name!r}")
    weight = pd.to_numeric(extra["weight"], errors="coerce") if "weight" in extra.columns else pd.Series(
        np.ones(len(extra)))
    if weight.isna().any():
        row = int(np.flatnonzero(weight.isna().to_numpy())[0])
        raise ModelFitError(f"extra_interactions: row {row + 1}, column 'weight': expected a number, "
                            f"got {extra['weight'].iloc[row]!r}")
    ts = pd.to_numeric(extra["timestamp"], errors="coerce").fillna(0) if "timestamp" in extra.columns else 0
    more = pd.DataFrame({
        "user_id": extra["user_id"].astype(str).to_numpy(),
        "item_id": items.to_numpy(),
        "weight": weight.to_numpy(dtype=float),
        "timestamp": np.asarray(ts if not np.isscalar(ts) else np.zeros(len(extra)), dtype=np.int64),
    })
    return pd.concat([frame, more], ignore_index=True)


def best_epoch(history: list[dict[str, float]]) -> int:
    scored = [h for h in history if "valid_ndcg@10" in h]
    if not scored:
        raise ModelFitError("history: no validation evaluation was recorded; cannot choose an epoch count")
    return int(max(scored, key=lambda h: (h["valid_ndcg@10"], -h["epoch"]))["epoch"])


def train_model(
    dataset: Dataset,
    name: str,
    features: Mapping[str, np.ndarray] | None = None,
    extra_interactions: pd.DataFrame | None = None,
    seed: int = 2020,
    progress: bool = False,
    memory_budget: int | None = None,
    **params: Any,
):
    """A model fitted on all of `dataset` (+ `extra_interactions`), ready to serve and `save`.

    `progress=True` shows the epoch bar of iterative models on stderr (both the probe and the final fit).
    `memory_budget` (bytes; default what the machine can give) is checked by each fit before it allocates:
    a model too large for the catalogue raises ModelTooLargeError (see recommenders/sizing.py)."""
    cls = model_class(name)
    if name in FEATURE_MODELS and not features:
        raise ModelFitError(f"features: model {name!r} needs item features; pass "
                            "recommenders.features.item_features(dataset, cache_dir)")
    data = merge_interactions(dataset, extra_interactions)
    if "seed" in cls.defaults:
        params = {**params, "seed": seed}
    if cls.iterative and "epochs" not in params:
        split = random_split(data, seed=seed, ratios=(0.9, 0.1, 0.0))
        probe = create_model(name, **params).fit(
            split.train, dataset.item_ids, features, valid=split.valid[split.valid["weight"] > 0], progress=progress,
            memory_budget=memory_budget)
        after = probe.params_after_probe() if hasattr(probe, "params_after_probe") else {
            "epochs": best_epoch(probe.history)}
        params = {**params, **after}
    model = create_model(name, **params)
    return model.fit(data, dataset.item_ids, features, progress=progress, memory_budget=memory_budget)
