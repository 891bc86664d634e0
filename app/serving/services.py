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
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from app.serving.assets import Assets
from app.serving.catalog import Catalog, QueryEncoder
from app.errors import bad
from app.serving.events import EventLog
from app.web.guards import PasswordGuard, RateLimits
from app.serving.labeling import Labeling
from app.serving.ranking import Ranking
from app.settings import Settings
from app.serving.slates import Slates
from app.serving.startup import app_features, default_choice, served_names, sync_catalog, train_or_load
from app.serving.upkeep import Upkeep

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.artifacts import ModelArtifacts
    from app.serving.growth import Growth
    from app.learning.retrain import RetrainResult
    from app.learning.schedule import RetrainSchedule
    from app.learning.served import ServedModelWatcher
    from recommenders.data import Dataset
    from recommenders.models.base import Recommender

log = logging.getLogger("vitrine")

__all__ = ["Services", "build_services", "train_or_load"]

QUALITY_EVERY_S = 60.0  # annotator reliability is re-estimated at most this often (when labels arrived)


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
    _quality_seen: int | None = None  # the newest label id the last reliability estimate saw
    _quality_at: float = float("-inf")  # when (time.monotonic()) it ran

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
                                  config=learning.gate_config(self.settings), log=log.info)
        self.serve_promoted()  # the candidate if promoted; else the served version (version 1 on a first retrain)
        return result

    def train_preference(self) -> dict[str, Any]:
        """Train the next preference (reward) model version on every label and Create pick (`app.learning.reward`),
        each label weighted by its annotator's reliability (estimated first: `update_quality`), gate it next to the
        served one and register it; a promoted version ranks best-of-N candidates from now on, here at once and
        on every replica at its next poll. With VITRINE_PAIR_SELECTION=active the served model then ranks the
        waiting label pairs (`app.learning.selection`)."""
        from app.learning.quality import weights_for
        from app.learning.reward import encoder_for, train_reward

        quality = self.update_quality()
        try:
            result = train_reward(self.events.Session, self.catalog, self.artifacts,
                                  encoder_for("minilm", self.settings.text_model),
                                  text_model=self.settings.text_model, read_bytes=self.assets.read_cover,
                                  annotator_weights=weights_for(quality["reliability"]))
        except ValueError as exc:
            raise bad("preference model", "enough labelled pairs to learn from", str(exc)) from exc
        self.serve_promoted()
        result["ranked_pairs"] = self.rank_pairs()
        return result

    def update_quality(self) -> dict[str, Any]:
        """Estimate every annotator's reliability from gold pairs and overlaps, store it and flag those below
        VITRINE_RELIABILITY_MIN (`app.learning.quality.update_quality`); returns its summary plus
        "reliability" (annotator name -> reliability)."""
        from app.learning.quality import update_quality

        st = self.settings
        return update_quality(self.events.Session, threshold=st.reliability_min, min_labels=st.reliability_min_labels)

    def tick_quality(self) -> None:
        """`update_quality` when labels arrived since the last estimate, at most every QUALITY_EVERY_S (the upkeep
        thread's task)."""
        from annotation import reads

        if time.monotonic() - self._quality_at < QUALITY_EVERY_S:
            return
        with self.events.ReadSession() as s:
            newest = reads.latest_label_id(s)
        if newest is not None and newest != self._quality_seen:
            self.update_quality()
            self._quality_seen, self._quality_at = newest, time.monotonic()

    def rank_pairs(self) -> int:
        """With VITRINE_PAIR_SELECTION=active and a served preference model: rank the waiting label pairs by what a
        label would teach it (`app.learning.selection.rank_waiting_pairs`); returns how many (0: not ranked)."""
        learner = self.assets.learner
        if self.settings.pair_selection != "active" or learner is None or learner.reward is None:
            return 0
        from app.learning.selection import rank_waiting_pairs

        return rank_waiting_pairs(self.events.Session, self.catalog, learner.reward, self.labeling.overlap)

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
    text_model = dataset.feature_models.get("text")  # the model that made the item text features, when known
    if features is None:
        from recommenders.features import DEFAULT_TEXT_MODEL

        with timed("features"):
            found = app_features(dataset, settings, say)
        features = found.arrays
        notes.extend(found.notes())
        if found.sources.get("text", "").startswith("encoded by"):
            text_model = settings.text_model or DEFAULT_TEXT_MODEL
    selected, selected_params = default_choice(settings, dataset, features, notes)
    names = served_names(settings, features, model_names, notes, selected)
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
        sync_catalog(Session, ReadSession, dataset, settings, say)
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
                                    allow_network=settings.allow_network, domain=domain,
                                    runtime=settings.caption_runtime).load()
    if covers.uses_fallback:
        notes.append("covers: typographic fallback in use")
    if captions.uses_fallback:
        notes.append("captions: template fallback in use")

    with timed("search"):
        query = _query_encoder(settings, text_model if "text" in features else None, notes)
        catalog = Catalog(dataset, features.get("text"), domain=domain,
                          llm_keywords=None if captions.uses_fallback else functools.partial(
                              captions.preference_keywords, wait=False),  # never the model on a request path
                          text_model=text_model, query_encoder=query)
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
        labeling=Labeling(catalog, ranking, assets, overlap=settings.label_overlap, gold_rate=settings.gold_rate),
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


def _query_encoder(settings: Settings, text_model: str | None, notes: list[str]) -> QueryEncoder | None:
    """The encoder of search queries (the pickers' search by meaning), loaded once: only when the item text
    features were made by the same model (else its vectors would not be comparable); a note says why not."""
    from recommenders.features import DEFAULT_TEXT_MODEL
    from recommenders.lookup import model_family, query_encoder

    wanted = settings.text_model or DEFAULT_TEXT_MODEL
    if text_model is None:
        notes.append("search by meaning unavailable: no item text features of a known model (search by title only)")
        return None
    if model_family(text_model) != model_family(wanted):
        notes.append(f"search by meaning unavailable: the item text features come from {text_model!r}, the query "
                     f"encoder would be {wanted!r} (search by title only)")
        return None
    try:
        encode, name, dim = query_encoder(settings.text_model)
        encode(["warm-up"])  # the first call costs most; here, not in a visitor's first search
    except (OSError, ValueError, LookupError, ImportError, RuntimeError) as exc:
        notes.append(f"search by meaning unavailable: the query encoder {wanted!r} could not be loaded "
                     f"({type(exc).__name__}: {str(exc)[:200]})")
        return None
    return QueryEncoder(encode, name, dim)


def _follow_the_registry(svc: Services, names: Sequence[str], timed) -> None:
    """Serve the promoted version of each model that has one (a retrain promoted here, before a restart, or on
    another replica), the promoted preference model too, keep following promotions every VITRINE_MODEL_POLL_S,
    and run the optional schedules."""
    from app.learning.reward import REWARD_KIND, REWARD_NAME, load_reward_artifact
    from app.learning.schedule import RetrainSchedule
    from app.learning.served import ServedModelWatcher

    with timed("model versions"):
        svc.watchers = {name: ServedModelWatcher(svc.events.Session, name, svc.artifacts) for name in names}
        text_model = svc.settings.text_model
        svc.reward_watcher = ServedModelWatcher(
            svc.events.Session, REWARD_NAME, svc.artifacts, kind=REWARD_KIND,
            load=lambda artifacts, key: load_reward_artifact(artifacts, key, text_model))
        served = svc.serve_promoted()
    if served:
        svc.notes.append(f"serving promoted versions from the registry: {', '.join(served)}")
    for watcher in [*svc.watchers.values(), svc.reward_watcher]:
        if watcher.error:
            svc.notes.append(watcher.error)
    st = svc.settings
    svc.schedule = RetrainSchedule(run=lambda: svc.retrain(svc.ranking.default_model),
                                   every_events=st.retrain_every_events, every_minutes=st.retrain_every_minutes)
    svc.reward_schedule = RetrainSchedule(run=svc.train_preference, every_events=st.reward_every_labels)
    tasks = [("catalog growth", svc.growth.refresh) if svc.growth is not None else None,
             ("promoted models", svc.serve_promoted), ("retrain schedule", svc.tick_schedule),
             ("preference model schedule", svc.tick_reward_schedule), ("asset quota", svc.assets.quota.tick),
             ("annotator reliability", svc.tick_quality)]
    if svc.assets.learner is not None:
        tasks.append(("prompt policy", svc.assets.learner.flush))
    svc.upkeep = Upkeep([t for t in tasks if t is not None], every_s=st.model_poll_s).start()
