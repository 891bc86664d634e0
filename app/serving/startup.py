"""The start-up steps `build_services` runs that decide what is served: the default model (VITRINE_MODEL, the
selection file's best, or what the catalogue's size and this machine call for), each model trained once and
cached by (dataset, params), and the catalog written to the store once per (catalog, database).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import bad
from app.settings import Settings

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.data import Dataset
    from recommenders.models.base import Recommender

log = logging.getLogger("vitrine")

__all__ = ["train_or_load", "selected_model", "served_names", "sized_default", "sync_catalog"]


def _model_key(dataset: "Dataset", name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"dataset": dataset.name, "content": dataset.content_hash(), "interactions": int(len(dataset.interactions)),
            "model": name, "params": dict(params or {})}


def _save_model(model: "Recommender", models_dir: Path, name: str, dataset: "Dataset",
                params: dict[str, Any] | None = None) -> None:
    model.save(models_dir / name)
    meta = {**_model_key(dataset, name, params), "saved_at": time.time()}
    (models_dir / f"{name}.trained_on.json").write_text(json.dumps(meta, indent=1))


def train_or_load(dataset: "Dataset", name: str, features: dict[str, np.ndarray] | None, models_dir: Path,
                  say: Callable[[str], Any] = log.info, params: dict[str, Any] | None = None,
                  memory_budget: int | None = None) -> "Recommender":
    """Load `models_dir/<name>/` when it was trained on this dataset with `params`, else train it and cache it
    (refused with ModelTooLargeError, before any big allocation, when it does not fit in `memory_budget` bytes:
    default what the machine has)."""
    from recommenders.models import load_model
    from recommenders.training import train_model

    meta_path = models_dir / f"{name}.trained_on.json"
    folder = models_dir / name
    if meta_path.is_file() and folder.is_dir():
        try:
            meta = json.loads(meta_path.read_text())
            key = _model_key(dataset, name, params)
            if {k: meta.get(k) for k in key} == key:
                model = load_model(folder)
                say(f"model {name}: loaded from {folder}")
                return model
            say(f"model {name}: cache in {folder} was trained on other data, retraining")
        except (OSError, ValueError, KeyError) as exc:
            say(f"model {name}: cache in {folder} unreadable ({exc}), retraining")
    start = time.perf_counter()
    model = train_model(dataset, name, features=features or None, memory_budget=memory_budget, **dict(params or {}))
    models_dir.mkdir(parents=True, exist_ok=True)
    _save_model(model, models_dir, name, dataset, params)
    say(f"model {name}: trained in {time.perf_counter() - start:.1f} s, cached in {folder}")
    return model


def selected_model(settings: Settings, notes: list[str]) -> tuple[str | None, dict[str, Any]]:
    """The best validation model of the selection file (`python -m recommenders search`), when there is one."""
    from recommenders.search import best_model

    if settings.model is not None or settings.selection is None or not settings.selection.is_file():
        return None, {}
    try:
        name, params = best_model(settings.selection)
    except (ValueError, LookupError) as exc:
        notes.append(f"model selection {settings.selection.name} ignored: {exc}")
        return None, {}
    notes.append(f"serving {name} {params or ''}: the best validation NDCG@10 in {settings.selection.name}")
    return name, params


def served_names(settings: Settings, features: dict[str, np.ndarray], model_names: Sequence[str] | None,
                  notes: list[str], selected: str | None = None) -> list[str]:
    """The default model first, then the extra ones; a content model is dropped when its features are missing.

    The default is VITRINE_MODEL, else `selected` (the selection file's best, or what the catalogue's size calls
    for: `sized_default`)."""
    from recommenders.models import DEFAULT_MODEL, DEFAULT_MODEL_WITHOUT_FEATURES, FEATURE_MODELS, MODEL_NAMES

    default = settings.model or selected or DEFAULT_MODEL
    if default in FEATURE_MODELS and "text" not in features:
        if settings.model is not None:
            raise bad("VITRINE_MODEL", "a model that needs no item features (they are unavailable)", default)
        notes.append(f"default model {default} needs text features; serving {DEFAULT_MODEL_WITHOUT_FEATURES}")
        default = DEFAULT_MODEL_WITHOUT_FEATURES
    if default not in MODEL_NAMES:
        raise bad("VITRINE_MODEL", f"one of {list(MODEL_NAMES)}", default)
    return list(dict.fromkeys([default, *(model_names if model_names is not None else settings.extra_models)]))


def sized_default(dataset: "Dataset", features: dict[str, np.ndarray], notes: list[str],
                   budget: int | None = None) -> tuple[str, dict[str, Any]]:
    """(model, params) this catalogue and this machine call for (`recommenders.sizing.choose_default`: the dense
    EASE family only where it fits with room, a sparse item-item model above), with the reason as a note (the
    Status tab and the log show it)."""
    from recommenders.sizing import choose_default, memory_budget

    inter = dataset.interactions
    choice = choose_default(max(int(inter["user_id"].nunique()), 1), max(len(dataset.items), 1), int(len(inter)),
                            has_text="text" in features, memory_budget=budget or memory_budget(),
                            feature_dims={k: int(v.shape[1]) for k, v in features.items()})
    notes.append(f"default model {choice.reason}")
    return choice.model, dict(choice.params)


def app_features(dataset: "Dataset", settings: Settings, say: Callable[[str], Any]):
    """The item features the app computes for `dataset` (`recommenders.features.compute_features`, cached in the data
    dir): each modality on its own, so a missing image model never drops the text features."""
    from recommenders.features import compute_features

    return compute_features(dataset, cache_dir=settings.data_dir / "features", text_model=settings.text_model,
                            image_model=settings.image_model if dataset.has_images else None,
                            allow_network=settings.allow_network, say=say)


def default_choice(settings: Settings, dataset: "Dataset", features: dict[str, np.ndarray], notes: list[str]
                   ) -> tuple[str | None, dict[str, Any]]:
    """(model, params) chosen before VITRINE_MODEL is applied: the selection file's best, else (when VITRINE_MODEL
    is unset) what the catalogue's size calls for; `served_names` puts it, or VITRINE_MODEL, first."""
    selected, params = selected_model(settings, notes)
    if settings.model is None and selected is None:
        selected, params = sized_default(dataset, features, notes, settings.memory_budget)
    return selected, params


def sync_catalog(Session, ReadSession, dataset: "Dataset", settings: Settings, say: Callable[[str], Any]) -> None:
    """Write the catalog's items to the store (feedback and impressions refer to them), unless this very catalog
    was written to this very database before and every item is there: a restart on a million items skips it.

    The stamp (`<data dir>/catalog-sync.json`) names the database (a hash of its URL), the catalog's content hash
    and the item count; the store's own count of items is checked too, so a wiped or different database is
    written again."""
    import hashlib

    from annotation import reads, store

    stamp_path = settings.data_dir / "catalog-sync.json"
    stamp = {"database": hashlib.sha256(settings.database_url.encode()).hexdigest()[:16],
             "content": dataset.content_hash(), "items": int(len(dataset.items))}
    try:
        done = json.loads(stamp_path.read_text()) == stamp
    except (OSError, ValueError):
        done = False
    if done:
        with ReadSession() as s:
            done = reads.item_count(s) == stamp["items"]
    if done:
        say(f"catalog sync: the store holds these {stamp['items']:,} items already")
        return
    with Session() as s, s.begin():
        store.sync_items(s, dataset.items)
    stamp_path.write_text(json.dumps(stamp))
