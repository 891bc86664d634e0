"""Model registry: `create_model(name, **params)`, `load_model(dir)`, `MODEL_NAMES`, `DEFAULT_MODEL`.

Model modules (and torch) are imported when a model is created, not when this package is imported.
One file per model; all share `recommenders.models.base.Recommender`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from recommenders.errors import UnknownModelError

_REGISTRY = {
    "pop": ("recommenders.models.pop", "Pop"),
    "itemknn": ("recommenders.models.itemknn", "ItemKNN"),
    "bpr": ("recommenders.models.bpr", "BPR"),
    "lightgcn": ("recommenders.models.lightgcn", "LightGCN"),
    "ease": ("recommenders.models.ease", "EASE"),
    "ease-text": ("recommenders.models.ease", "EASEText"),
    "sparse-ease": ("recommenders.models.sparse_ease", "SparseEASE"),
    "sparse-ease-text": ("recommenders.models.sparse_ease", "SparseEASEText"),
    "text": ("recommenders.models.vbpr", "Text"),
    "vbpr": ("recommenders.models.vbpr", "VBPR"),
    "two-tower": ("recommenders.models.two_tower", "TwoTower"),
    "freedom": ("recommenders.models.freedom", "Freedom"),
    "lowpass": ("recommenders.models.lowpass", "LowPass"),
    "blend": ("recommenders.models.blend", "Blend"),
    "sasrec": ("recommenders.models.sasrec", "SASRec"),
    "sasrec-content": ("recommenders.models.sasrec", "SASRecContent"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
FEATURE_MODELS: frozenset[str] = frozenset({"text", "vbpr", "ease-text", "sparse-ease-text", "two-tower", "freedom", "blend", "sasrec-content"})  # need features["text"] at fit
# The model the app serves by default: the best valid and test NDCG@10 we measured on ml-100k
# (bench/RESULTS-recommenders.md). It needs text features; without them serve DEFAULT_MODEL_WITHOUT_FEATURES.
DEFAULT_MODEL = "ease-text"
DEFAULT_MODEL_WITHOUT_FEATURES = "ease"
# Item cold start (the cold-item split: only items nobody has interacted with are ranked): the aligned two-tower,
# cold items by its content tower alone, with the parameters chosen on that split's valid part (BENCHMARKS.md,
# "Item cold start"). `python -m recommenders evaluate --split cold-item` runs it when --model is not given.
COLD_START_MODEL = "two-tower"
COLD_START_PARAMS: dict[str, Any] = {
    "valid_items": "cold",  # early stopping ranks the cold items only, as the split's evaluation does
    "temperature": 0.05,  # best valid NDCG@10 of 0.05 / 0.1 / 0.2, at seed 2020 and on the mean of seeds 2020, 1, 2
    "batch_size": 2048,  # twice the model's batch (more in-batch negatives), at twice its lr
    "lr": 0.004,
}


def model_class(name: str) -> type:
    try:
        module, cls = _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"name: expected one of {list(MODEL_NAMES)}, got {name!r}") from None
    return getattr(importlib.import_module(module), cls)


def create_model(name: str, **params: Any):
    return model_class(name)(**params)


def load_model(directory: str | Path):
    import numpy as np

    directory = Path(directory)
    meta_path = directory / "params.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"directory: expected a saved model with params.json, got {directory}")
    meta = json.loads(meta_path.read_text())
    cls = model_class(meta["model"])
    with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return cls._from_saved(meta, arrays)


__all__ = ["COLD_START_MODEL", "COLD_START_PARAMS", "DEFAULT_MODEL", "DEFAULT_MODEL_WITHOUT_FEATURES", "FEATURE_MODELS", "MODEL_NAMES", "create_model", "load_model", "model_class"]
