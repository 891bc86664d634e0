"""Model selection on the validation split alone: a small seeded grid per model, the best valid NDCG@10 wins.

`search(split, item_ids, features, spaces)` fits every (model, parameter combination) on `split.train`
(iterative models early-stop on `split.valid`), scores it on `split.valid` only (full ranking, train items
excluded) and never touches `split.test`: test metrics cannot leak into the choice. When a model's grid is
larger than `max_trials`, a seeded subset is drawn. `write_selection` stores the result as JSON; the app
reads it with `best_model(path) -> (name, params)` and trains that model with `training.train_model`
(which picks the epoch count of iterative models itself, so `epochs` is not part of the selected params).
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from recommenders.errors import UnknownModelError
from recommenders.splits import Split

METRIC = "valid_ndcg@10"
SELECTION_FORMAT = 1

# Each model's main hyper-parameters around its defaults (the defaults are in every grid).
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "ease": {"reg": [100.0, 250.0, 500.0, 1000.0]},
    "ease-text": {"reg": [250.0, 400.0, 600.0], "text_weight": [10.0, 30.0, 60.0], "rating_weight": [0.0, 0.2]},
    "itemknn": {"k": [50, 100, 200]},
    "bpr": {"lr": [0.001, 0.002, 0.005], "reg": [0.0, 1e-4]},
    "lightgcn": {"layers": [1, 2, 3], "reg": [1e-4, 1e-3]},
    "vbpr": {"reg": [1e-4, 1e-3], "content_dim": [32, 64]},
    "two-tower": {"temperature": [0.05, 0.1, 0.2], "align_weight": [0.0, 0.1, 0.5], "id_dropout": [0.0, 0.2]},
    "freedom": {"knn": [5, 10, 20], "content_weight": [0.0, 0.1], "item_layers": [1, 2]},
    "lowpass": {"factors": [32, 64, 128]},
    # (freedom, two-tower, lowpass); "valid" (the default): the model chooses them on valid from its weight_grid
    "blend": {"weights": ["valid", [0.75, 1.5, 0.0], [0.75, 1.5, 0.5], [2.5, 3.0, 0.5]]},
}


def grid(space: Mapping[str, Sequence[Any]], max_trials: int, seed: int) -> list[dict[str, Any]]:
    """Every combination of `space`, or a seeded subset of `max_trials` of them (in grid order)."""
    if max_trials < 1:
        raise ValueError(f"max_trials: expected at least 1, got {max_trials}")
    keys = sorted(space)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if len(combos) > max_trials:
        keep = np.sort(np.random.default_rng(seed).choice(len(combos), size=max_trials, replace=False))
        combos = [combos[i] for i in keep]
    return combos


def search(
    split: Split,
    item_ids: Sequence[str],
    features: Mapping[str, np.ndarray] | None,
    spaces: Mapping[str, Mapping[str, Sequence[Any]]],
    max_trials: int = 12,
    seed: int = 2020,
    fixed: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit and validate every trial; returns {"best": {...}, "trials": [...], ...} (JSON-ready).

    `fixed[name]` holds parameters set for every trial of that model (e.g. fewer epochs for a smoke run).
    Reads `split.train` and `split.valid` only.
    """
    from recommenders.evaluation import evaluate_model
    from recommenders.models import create_model, model_class

    if not spaces:
        raise ValueError("spaces: expected at least one model to search, got none")
    trials: list[dict[str, Any]] = []
    for name, space in spaces.items():
        cls = model_class(name)  # UnknownModelError for a bad name, before any fitting
        for key in space:
            if key not in cls.defaults:
                raise ValueError(f"spaces[{name!r}]: unknown parameter {key!r}; expected some of {sorted(cls.defaults)}")
        for combo in grid(space, max_trials, seed):
            params = {**(fixed or {}).get(name, {}), **combo}
            if "seed" in cls.defaults:
                params["seed"] = seed
            model = create_model(name, **params)
            t0 = time.perf_counter()
            model.fit(split.train, item_ids, features, valid=split.valid, progress=progress)
            fit_seconds = time.perf_counter() - t0
            valid = evaluate_model(model, split, ks=(10,), parts=("valid",))["valid"]
            trials.append({"model": name, "params": combo, "fixed": dict((fixed or {}).get(name, {})),
                           METRIC: float(valid["ndcg@10"]), "valid_recall@10": float(valid["recall@10"]),
                           "fit_seconds": fit_seconds, "epochs_run": len(model.history) or None})
    best = max(trials, key=lambda t: t[METRIC])  # first trial wins a tie (grid order)
    return {"format": SELECTION_FORMAT, "metric": METRIC, "split": split.name, "seed": seed,
            "best": {"model": best["model"], "params": best["params"], METRIC: best[METRIC]},
            "trials": trials,
            "protocol": "fit on train (iterative models early-stop on valid), score valid only; test never read"}


def write_selection(result: Mapping[str, Any], path: str | Path) -> Path:
    """Write `search`'s result as JSON (temporary file + rename: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(path)
    return path


def best_model(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(model name, params) of the best validation trial stored in a selection JSON file."""
    from recommenders.models import MODEL_NAMES

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a model-selection JSON written by `python -m recommenders search`, "
                                f"got {path} (no such file)")
    try:
        data = json.loads(path.read_text())
        name, params = data["best"]["model"], data["best"]["params"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"path: {path} is not a model-selection file (expected {{'best': {{'model', 'params'}}}}): "
                         f"{exc}") from None
    if name not in MODEL_NAMES:
        raise UnknownModelError(f"{path}: best model {name!r} is not one of {list(MODEL_NAMES)}")
    if not isinstance(params, dict):
        raise ValueError(f"{path}: best params: expected an object, got {type(params).__name__}")
    return str(name), dict(params)
