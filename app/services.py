"""The loaded world, built once per process from small parts, each with one job:

    catalog   `app.catalog.Catalog`     dataset look-ups, histories, user profiles (no database)
    ranking   `app.ranking.Ranking`     the served recommenders and the ranked rows of a slate
    events    `app.events.EventLog`     users, impressions and feedback in the store
    assets    `app.assets.Assets`       cover and caption generators, their records, the background worker
    slates    `app.slates.Slates`       the one slate flow used by the Discover tab and /recommend
    labeling  `app.labeling.Labeling`   annotators, the pair queue, labels and Create-tab picks

Each part is handed the parts it needs (no circles). `build_services(settings)` runs the start-up sequence:
migrate the database, load the dataset, compute or load the cached item features, train or load the served
models, sync the catalog into the store, build the generators (falling back when a model is not available).
Gradio handlers receive the `Services` as their first argument; per-visitor state never lives here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from app.assets import Assets
from app.catalog import Catalog
from app.errors import bad
from app.events import EventLog
from app.labeling import Labeling
from app.ranking import Ranking
from app.settings import Settings
from app.slates import Slates

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.data import Dataset
    from recommenders.models.base import Recommender

log = logging.getLogger("vitrine")

__all__ = ["Services", "build_services", "train_or_load"]


@dataclass
class Services:
    settings: Settings
    features: dict[str, np.ndarray]
    engine: Engine
    catalog: Catalog
    ranking: Ranking
    events: EventLog
    assets: Assets
    slates: Slates
    labeling: Labeling
    startup_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # start-up messages worth showing on the Status tab

    def close(self) -> None:
        """Stop the background generation worker and release the DB connections."""
        self.assets.close()
        self.engine.dispose()

    def retrain(self, name: str) -> dict[str, Any]:
        """Retrain `name` on the dataset plus the app's logged feedback, serve it, cache it on disk."""
        from annotation import frames
        from recommenders.training import train_model

        self.ranking.model(name)  # AppInputError for an unknown name
        with self.events.ReadSession() as s:
            extra = frames.interactions_frame(s)
        start = time.perf_counter()
        dataset = self.catalog.dataset
        model = train_model(dataset, name, features=self.features or None, extra_interactions=extra)
        seconds = time.perf_counter() - start
        _save_model(model, self.settings.data_dir / "models", name, dataset, extra_rows=len(extra))
        self.ranking.swap(name, model)
        return {"model": name, "extra_interactions": int(len(extra)), "seconds": round(seconds, 2)}


# ----------------------------------------------------------------------------------------------------
# start-up
# ----------------------------------------------------------------------------------------------------
def _model_key(dataset: "Dataset", name: str) -> dict[str, Any]:
    return {"dataset": dataset.name, "content": dataset.content_hash(), "interactions": int(len(dataset.interactions)),
            "model": name}


def _save_model(model: "Recommender", models_dir: Path, name: str, dataset: "Dataset", extra_rows: int = 0) -> None:
    model.save(models_dir / name)
    meta = {**_model_key(dataset, name), "extra_rows": int(extra_rows), "saved_at": time.time()}
    (models_dir / f"{name}.trained_on.json").write_text(json.dumps(meta, indent=1))


def train_or_load(dataset: "Dataset", name: str, features: dict[str, np.ndarray] | None, models_dir: Path,
                  say: Callable[[str], Any] = log.info) -> "Recommender":
    """Load `models_dir/<name>/` when it was trained on this dataset, else train it and cache it there."""
    from recommenders.models import load_model
    from recommenders.training import train_model

    meta_path = models_dir / f"{name}.trained_on.json"
    folder = models_dir / name
    if meta_path.is_file() and folder.is_dir():
        try:
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in _model_key(dataset, name)} == _model_key(dataset, name):
                model = load_model(folder)
                say(f"model {name}: loaded from {folder}")
                return model
            say(f"model {name}: cache in {folder} was trained on other data, retraining")
        except (OSError, ValueError, KeyError) as exc:
            say(f"model {name}: cache in {folder} unreadable ({exc}), retraining")
    start = time.perf_counter()
    model = train_model(dataset, name, features=features or None)
    models_dir.mkdir(parents=True, exist_ok=True)
    _save_model(model, models_dir, name, dataset)
    say(f"model {name}: trained in {time.perf_counter() - start:.1f} s, cached in {folder}")
    return model


def _served_names(settings: Settings, features: dict[str, np.ndarray], model_names: Sequence[str] | None,
                  notes: list[str]) -> list[str]:
    """The default model first, then the extra ones; a content model is dropped when its features are missing."""
    from recommenders.models import DEFAULT_MODEL, DEFAULT_MODEL_WITHOUT_FEATURES, FEATURE_MODELS, MODEL_NAMES

    default = settings.model or DEFAULT_MODEL
    if default in FEATURE_MODELS and "text" not in features:
        if settings.model is not None:
            raise bad("VITRINE_MODEL", "a model that needs no item features (they are unavailable)", default)
        notes.append(f"default model {default} needs text features; serving {DEFAULT_MODEL_WITHOUT_FEATURES}")
        default = DEFAULT_MODEL_WITHOUT_FEATURES
    if default not in MODEL_NAMES:
        raise bad("VITRINE_MODEL", f"one of {list(MODEL_NAMES)}", default)
    return list(dict.fromkeys([default, *(model_names if model_names is not None else settings.extra_models)]))


def build_services(
    settings: Settings,
    *,
    dataset: "Dataset | None" = None,
    features: dict[str, np.ndarray] | None = None,
    model_names: Sequence[str] | None = None,
    say: Callable[[str], Any] = log.info,
) -> Services:
    """The start-up sequence; see the module docstring. `dataset`/`features`/`model_names` override for tests."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade

    timings: dict[str, float] = {}
    notes: list[str] = []

    @contextlib.contextmanager
    def timed(step: str):
        start = time.perf_counter()
        yield
        timings[step] = time.perf_counter() - start
        say(f"start-up: {step} {timings[step]:.2f} s")

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with timed("database"):
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        Session = make_session_factory(engine)
        ReadSession = make_session_factory(engine, read_only=True)
    if dataset is None:
        from recommenders.data import load_dataset

        with timed("dataset"):
            dataset = load_dataset(settings.dataset, data_dir)
    if features is None:
        from recommenders.features import item_features

        with timed("features"):
            try:
                features = item_features(
                    dataset,
                    cache_dir=data_dir / "features",
                    text_model=settings.text_model,
                    image_model=settings.image_model if dataset.has_images else None,
                    allow_network=settings.allow_network,
                )
            except (LookupError, ValueError, OSError) as exc:
                notes.append(f"item features unavailable ({exc}); content models are not served")
                features = {}
    names = _served_names(settings, features, model_names, notes)
    models: dict[str, Recommender] = {}
    with timed("models"):
        for name in names:
            try:
                models[name] = train_or_load(dataset, name, features, data_dir / "models", say=say)
            except (ValueError, LookupError) as exc:
                if name == names[0]:
                    raise
                notes.append(f"model {name} not served: {exc}")
    with timed("catalog sync"):
        with Session() as s, s.begin():
            store.sync_items(s, dataset.items)
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator

    with timed("generators"):
        asset_dir = data_dir / "assets"
        covers = CoverGenerator(settings.cover_model, asset_dir, device=settings.device,
                                allow_network=settings.allow_network).load()
        captions = CaptionGenerator(settings.caption_model, asset_dir, device=settings.device,
                                    allow_network=settings.allow_network).load()
    if covers.uses_fallback:
        notes.append("covers: typographic fallback in use")
    if captions.uses_fallback:
        notes.append("captions: template fallback in use")

    catalog = Catalog(dataset, features.get("text"))
    ranking = Ranking(catalog, models, default_model=names[0])
    events = EventLog(catalog, Session, ReadSession)
    assets = Assets(catalog, events, covers, captions, ReadSession)
    return Services(
        settings=settings, features=features, engine=engine, catalog=catalog, ranking=ranking, events=events,
        assets=assets, slates=Slates(catalog, ranking, events, assets),
        labeling=Labeling(catalog, ranking, assets, overlap=settings.label_overlap),
        startup_s=timings, notes=notes,
    )
