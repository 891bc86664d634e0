"""The loaded world, built once per process from small parts, each with one job:

    catalog   `app.serving.catalog.Catalog`     dataset look-ups, histories, user profiles (no database)
    ranking   `app.serving.ranking.Ranking`     the served recommenders and the ranked rows of a slate
    events    `app.serving.events.EventLog`     users, impressions and feedback in the store
    assets    `app.serving.assets.Assets`       cover and caption generators, their records, the background worker
    slates    `app.serving.slates.Slates`       the one slate flow used by the Discover tab and /recommend
    labeling  `app.serving.labeling.Labeling`   annotators, the pair queue, labels and Create-tab picks
    rates     `app.web.guards.RateLimits`   per-client limits on slates, generation, feedback and onboarding
    passwords `app.web.guards.PasswordGuard` password guesses throttled per client and per target, logged
    growth    `app.serving.growth.Growth`       a bring-your-own catalog that grows while the app runs

Each part is handed the parts it needs (no circles). `build_services(settings)` runs the start-up sequence:
migrate the database, load the dataset, compute or load the cached item features, train or load the served
models, sync the catalog into the store, build the generators (falling back when a model is not available).
Gradio handlers receive the `Services` as their first argument; per-visitor state never lives here.
"""

from __future__ import annotations

import functools

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

from app.serving.assets import Assets
from app.serving.catalog import Catalog
from app.errors import bad
from app.serving.events import EventLog
from app.web.guards import PasswordGuard, RateLimits
from app.serving.labeling import Labeling
from app.serving.ranking import Ranking
from app.settings import Settings
from app.serving.slates import Slates
from app.serving.upkeep import Upkeep

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.artifacts import ModelArtifacts
    from app.serving.growth import Growth
    from app.learning.retrain import RetrainResult, RetrainSchedule, ServedModelWatcher
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
    rates: RateLimits
    passwords: PasswordGuard
    startup_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # start-up messages worth showing on the Status tab

    durability: Callable[[], list[tuple[str, str, str]]] | None = None  # the sync runner's status rows, when one runs
    watchers: dict[str, ServedModelWatcher] = field(default_factory=dict)  # name -> its promoted version
    reward_watcher: ServedModelWatcher | None = None  # the promoted preference (reward) model
    artifacts: ModelArtifacts | None = None  # model versions' artifacts in the blob store (set by build_services)
    schedule: RetrainSchedule | None = None
    reward_schedule: RetrainSchedule | None = None
    upkeep: Upkeep | None = None
    growth: Growth | None = None

    def close(self) -> None:
        """Stop the background threads and release the DB connections."""
        if self.upkeep is not None:
            self.upkeep.stop()
        if self.assets.learner is not None:
            self.assets.learner.flush()
        self.assets.close()
        self.engine.dispose()

    @property
    def registry_dir(self) -> Path:
        return self.settings.registry_dir

    def retrain(self, name: str) -> RetrainResult:
        """Gated retraining of `name` (`app.learning.retrain.retrain`): a candidate on the dataset plus the logged
        feedback, evaluated next to the served version on the offline split and the recent holdout, promoted
        only when not worse on both (VITRINE_GATE_TOLERANCE). Every version is registered; a promoted one is
        served at once here and by every replica at its next poll."""
        from app.learning import retrain as learning

        self.ranking.model(name)  # AppInputError for an unknown name
        result = learning.retrain(self.events.Session, self.catalog.dataset, name, self.artifacts,
                                  features=self.features or None,
                                  config=learning.GateConfig(tolerance=self.settings.gate_tolerance), log=log.info)
        self.serve_promoted()  # the candidate if promoted; else the served version (version 1 on a first retrain)
        return result

    def train_preference(self) -> dict[str, Any]:
        """Train the next preference (reward) model version on every label and Create pick (`app.learning.reward`),
        gate it next to the served one and register it; a promoted version ranks best-of-N candidates from now on,
        here at once and on every replica at its next poll."""
        from app.learning.reward import encoder_for, train_reward

        try:
            result = train_reward(self.events.Session, self.catalog, self.artifacts,
                                  encoder_for("minilm", self.settings.text_model),
                                  text_model=self.settings.text_model, read_bytes=self.assets.read_cover)
        except ValueError as exc:
            raise bad("preference model", "enough labelled pairs to learn from", str(exc)) from exc
        self.serve_promoted()
        return result

    def serve_promoted(self) -> list[str]:
        """Swap in every model whose promoted version changed since the last look; returns their names."""
        changed = [name for name, watcher in self.watchers.items() if watcher.refresh()]
        for name in changed:
            model = self.watchers[name].model
            # a content model trained before the catalog grew ranks the items added since (cold start)
            grown = self.growth.fit(model) if self.growth is not None else None
            self.ranking.swap(name, grown if grown is not None else model)
            log.info("serving %s version id %s", name, self.watchers[name].version_id)
        reward = self.reward_watcher
        if reward is not None and self.assets.learner is not None:
            if reward.refresh():
                self.assets.learner.reward = reward.model
                log.info("ranking best-of-N with preference model %s version %s", reward.name, reward.version)
                changed.append(reward.name)
        return changed

    def tick_schedule(self) -> None:
        """Retrain the default model when the schedule (every N events or T minutes; off by default) is due."""
        from annotation import reads

        self._tick(self.schedule, reads.latest_feedback_id)

    def tick_reward_schedule(self) -> None:
        """Train the next preference model when VITRINE_REWARD_EVERY_LABELS new labels arrived (off by default)."""
        from annotation import reads

        self._tick(self.reward_schedule, reads.latest_label_id)

    def _tick(self, schedule: RetrainSchedule | None, latest: Callable[[Any], int | None]) -> None:
        """Tick an enabled schedule with the store's newest row id (`latest(session)`)."""
        if schedule is None or not schedule.enabled:
            return
        with self.events.ReadSession() as s:
            newest = latest(s)
        schedule.tick(newest)


# ----------------------------------------------------------------------------------------------------
# start-up
# ----------------------------------------------------------------------------------------------------
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


def _selected(settings: Settings, notes: list[str]) -> tuple[str | None, dict[str, Any]]:
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


def _served_names(settings: Settings, features: dict[str, np.ndarray], model_names: Sequence[str] | None,
                  notes: list[str], selected: str | None = None) -> list[str]:
    """The default model first, then the extra ones; a content model is dropped when its features are missing.

    The default is VITRINE_MODEL, else `selected` (the selection file's best, or what the catalogue's size calls
    for: `_sized_default`)."""
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


def _sized_default(dataset: "Dataset", features: dict[str, np.ndarray], notes: list[str],
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


def _sync_catalog(Session, ReadSession, dataset: "Dataset", settings: Settings, say: Callable[[str], Any]) -> None:
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


def build_services(
    settings: Settings,
    *,
    dataset: "Dataset | None" = None,
    features: dict[str, np.ndarray] | None = None,
    model_names: Sequence[str] | None = None,
    say: Callable[[str], Any] = log.info,
) -> Services:
    """The start-up sequence; see the module docstring. `dataset`/`features`/`model_names` override for tests."""
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
            dataset = load_dataset(settings.dataset, data_dir, cache_dir=data_dir / "datasets", say=say)
    if features is None:
        from recommenders.features import compute_features

        with timed("features"):
            # each modality on its own: a missing image model never drops the text features
            found = compute_features(dataset, cache_dir=data_dir / "features", text_model=settings.text_model,
                                     image_model=settings.image_model if dataset.has_images else None,
                                     allow_network=settings.allow_network, say=say)
        features = found.arrays
        notes.extend(found.notes())
    selected, selected_params = _selected(settings, notes)
    if settings.model is None and selected is None:
        selected, selected_params = _sized_default(dataset, features, notes, settings.memory_budget)
    names = _served_names(settings, features, model_names, notes, selected)
    models: dict[str, Recommender] = {}
    with timed("models"):
        for name in names:
            try:
                models[name] = train_or_load(dataset, name, features, data_dir / "models", say=say,
                                             params=selected_params if name == selected else None,
                                             memory_budget=settings.memory_budget)
            except (ValueError, LookupError) as exc:
                if name == names[0]:
                    raise
                notes.append(f"model {name} not served: {exc}")
    with timed("catalog sync"):
        _sync_catalog(Session, ReadSession, dataset, settings, say)
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator
    from generation.domain import Domain

    domain = Domain.from_spec(dataset.domain)  # the dataset declares it: prompts, captions and UI words follow
    with timed("generators"):
        # generated files live in the blob store by key (a directory, or an fsspec URL shared by the replicas,
        # read through a local cache); the database records the key, never a local path
        from generation.blobs import BlobStore

        asset_dir = BlobStore(settings.blob_location, cache_dir=settings.blob_cache_dir)
        covers = CoverGenerator(settings.cover_model, asset_dir, device=settings.device,
                                allow_network=settings.allow_network, domain=domain,
                                init_strength=settings.init_strength if dataset.has_images else None).load()
        captions = CaptionGenerator(settings.caption_model, asset_dir, device=settings.device,
                                    allow_network=settings.allow_network, domain=domain).load()
    if covers.uses_fallback:
        notes.append("covers: typographic fallback in use")
    if captions.uses_fallback:
        notes.append("captions: template fallback in use")

    catalog = Catalog(dataset, features.get("text"), domain=domain,
                      llm_keywords=None if captions.uses_fallback else functools.partial(
                          captions.preference_keywords, wait=False))  # never the model on a request path
    ranking = Ranking(catalog, models, default_model=names[0])
    events = EventLog(catalog, Session, ReadSession)
    from app.learning.learner import Learner, best_of_n_for

    learner = Learner.start(data_dir, catalog, events, n=best_of_n_for(settings.best_of_n, settings.device),
                            pairs_max=settings.auto_pairs_max, text_model=settings.text_model, notes=notes)
    assets = Assets(catalog, events, covers, captions, ReadSession, learner=learner,
                    quota_bytes=settings.asset_quota_bytes, staging_dir=data_dir / "staging")
    learner.use_store(assets.read_cover)  # the reward model sees the covers it ranks (recorded by blob key)
    svc = Services(
        settings=settings, features=features, engine=engine, catalog=catalog, ranking=ranking, events=events,
        assets=assets, slates=Slates(catalog, ranking, events, assets),
        labeling=Labeling(catalog, ranking, assets, overlap=settings.label_overlap),
        rates=RateLimits({"slate": settings.rate_slate, "generate": settings.rate_generate,
                          "feedback": settings.rate_feedback, "onboard": settings.rate_onboard},
                         trust_proxy=settings.trust_proxy),
        passwords=PasswordGuard(settings.rate_password_client, settings.rate_password_target),
        startup_s=timings, notes=notes,
    )
    from app.learning.artifacts import ModelArtifacts
    from app.serving.growth import Growth

    # model versions are saved in the same blob store (every replica that shares it serves any version)
    svc.artifacts = ModelArtifacts(asset_dir, settings.model_cache_dir, legacy_dir=settings.registry_dir)
    svc.growth = Growth(settings, catalog, ranking, events, features)
    _follow_the_registry(svc, names, timed)
    for note in notes:  # what was chosen and why, what falls back: the log says what the Status tab says
        say(f"start-up note: {note}")
    return svc


def _follow_the_registry(svc: Services, names: Sequence[str], timed) -> None:
    """Serve the promoted version of each model that has one (a retrain promoted here, before a restart, or on
    another replica), the promoted preference model too, keep following promotions every VITRINE_MODEL_POLL_S,
    and run the optional schedules."""
    from app.learning import retrain as learning
    from app.learning.reward import REWARD_KIND, REWARD_NAME, load_reward_artifact

    with timed("model versions"):
        svc.watchers = {name: learning.ServedModelWatcher(svc.events.Session, name, svc.artifacts) for name in names}
        text_model = svc.settings.text_model
        svc.reward_watcher = learning.ServedModelWatcher(
            svc.events.Session, REWARD_NAME, svc.artifacts, kind=REWARD_KIND,
            load=lambda artifacts, key: load_reward_artifact(artifacts, key, text_model))
        served = svc.serve_promoted()
    if served:
        svc.notes.append(f"serving promoted versions from the registry: {', '.join(served)}")
    for watcher in [*svc.watchers.values(), svc.reward_watcher]:
        if watcher.error:
            svc.notes.append(watcher.error)
    st = svc.settings
    svc.schedule = learning.RetrainSchedule(run=lambda: svc.retrain(svc.ranking.default_model),
                                            every_events=st.retrain_every_events,
                                            every_minutes=st.retrain_every_minutes)
    svc.reward_schedule = learning.RetrainSchedule(run=svc.train_preference, every_events=st.reward_every_labels)
    tasks = [("catalog growth", svc.growth.refresh) if svc.growth is not None else None,
             ("promoted models", svc.serve_promoted), ("retrain schedule", svc.tick_schedule),
             ("preference model schedule", svc.tick_reward_schedule), ("asset quota", svc.assets.quota.tick)]
    if svc.assets.learner is not None:
        tasks.append(("prompt policy", svc.assets.learner.flush))
    svc.upkeep = Upkeep([t for t in tasks if t is not None], every_s=st.model_poll_s).start()
