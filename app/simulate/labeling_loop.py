"""Proof with a known truth for labeling studies: informative pairs first, and annotator quality.

    python -m app.simulate --reward --pair-selection random,active --seeds 0,1,2 --json sel.json
    python -m app.simulate --reward --quality --labels 2000 --json quality.json

Both use the generation loop's world (`app.simulate.generation_world`: visitors with real profiles, a hidden
truth, simulated covers and captions) and its simulated annotators (right with probability `accuracy`,
round-robin), and write everything through the store and the queue as the app does: a pool of waiting pairs
(random visitors, items, cover styles and alphas or caption traits, 70% covers) is recorded first; each label is
the answer to `queue.next_pair` for the annotator whose turn it is. The preference model
(`generation.reward.RewardModel`, the app's, untouched) is judged against the hidden truth on fresh pairs drawn
the same way ("truth accuracy").

Pair selection (`simulate_selection`), one store per arm: every `step` labels the model is retrained on the
labels so far and measured; the "active" arm then ranks the waiting pairs (`generation.selection.rank_pairs`)
and stores the order (`queue.set_priorities`), the "random" arm leaves the queue's own order (the pool was
recorded in random order). Reported: each arm's learning curve and the labels it needed to reach `target`.

Annotator quality (`simulate_quality`), one store: `labels` labels with overlap 2 from five annotators (by
default careful 0.95, average 0.8, sloppy 0.6, a spammer 0.5 and an adversary who picks the worse side 80% of
the time), `gold` pairs with the truth as their known answer mixed in at `gold_rate`. Then each annotator's
reliability is estimated (`annotation.quality`, from gold pairs and overlaps) and two models are trained on the
same labels, weighted by reliability (`app.learning.quality.weights_for`) and unweighted.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from app.simulate.generation_loop import COVER_SHARE, _accuracy, _record
from app.simulate.generation_world import GenerationWorld
from app.simulate.shared import AnnotatorSpec, check_ranges, seeded_uuid

DEFAULT_QUALITY_ANNOTATORS = (
    AnnotatorSpec("careful", 0.95), AnnotatorSpec("average", 0.8), AnnotatorSpec("sloppy", 0.6),
    AnnotatorSpec("spammer", 0.5), AnnotatorSpec("adversary", 0.2),
)


@dataclass
class SelectionSimConfig:
    arms: tuple[str, ...] = ("random", "active")
    pool: int = 4000  # waiting pairs recorded before the first label
    max_labels: int = 2500  # an arm stops here if it has not reached the target
    step: int = 100  # labels between retrainings (and measurements; the active arm re-ranks then)
    target: float = 0.75  # truth accuracy whose label count is reported
    stop_at_target: bool = True  # an arm stops at the first measurement at or above the target
    users: int = 200
    annotators: tuple[AnnotatorSpec, ...] = (
        AnnotatorSpec("careful", 0.95), AnnotatorSpec("average", 0.8), AnnotatorSpec("sloppy", 0.6),
    )
    overlap: int = 1  # annotators per pair (1: every label is a new pair)
    eval_pairs: int = 2000  # fresh pairs judged against the truth at each measurement
    encoder: str = "minilm"
    seed: int = 0
    # the preference model both arms train: None is the app's default (`generation.reward.RewardConfig()`)
    reward: Any = None

    def __post_init__(self) -> None:
        check_ranges(self, [("pool", 20, 1_000_000), ("max_labels", 20, 1_000_000), ("step", 10, 100_000),
                            ("users", 2, 100_000), ("overlap", 1, 20), ("eval_pairs", 10, 1_000_000)],
                     probabilities=["target"])
        unknown = set(self.arms) - {"random", "active"}
        if not self.arms or unknown:
            raise ValueError(f"arms must be among random, active, got {list(self.arms)!r}")
        if self.max_labels > self.pool * self.overlap:
            raise ValueError(f"max_labels ({self.max_labels}) must be at most pool x overlap "
                             f"({self.pool * self.overlap}): the queue would run dry")
        if self.encoder not in ("minilm", "hashing"):
            raise ValueError(f"encoder must be 'minilm' or 'hashing', got {self.encoder!r}")
        if not self.annotators:
            raise ValueError("annotators must name at least one simulated annotator")
        from generation.reward import RewardConfig

        if self.reward is not None and not isinstance(self.reward, RewardConfig):
            raise ValueError(f"reward must be None or a generation.reward.RewardConfig, got {self.reward!r}")


@dataclass
class QualitySimConfig:
    labels: int = 2000
    pool: int = 1500  # waiting pairs (each labelled by `overlap` annotators)
    gold: int = 40  # pairs whose known answer (the truth) is given
    gold_rate: float = 0.1  # share of each annotator's pairs that are gold pairs
    overlap: int = 2
    users: int = 200
    annotators: tuple[AnnotatorSpec, ...] = DEFAULT_QUALITY_ANNOTATORS
    threshold: float = 0.6  # reliability below which an annotator is flagged (reported, not enforced here)
    eval_pairs: int = 2000
    encoder: str = "minilm"
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, [("labels", 20, 1_000_000), ("pool", 20, 1_000_000), ("gold", 0, 100_000),
                            ("overlap", 1, 20), ("users", 2, 100_000), ("eval_pairs", 10, 1_000_000)],
                     probabilities=["gold_rate", "threshold"])
        if self.gold > self.pool:
            raise ValueError(f"gold ({self.gold}) must be at most pool ({self.pool})")
        if self.labels > (self.pool - self.gold) * self.overlap + self.gold * len(self.annotators):
            raise ValueError(f"labels ({self.labels}) exceed what the pool can take: make the pool larger")
        if self.encoder not in ("minilm", "hashing"):
            raise ValueError(f"encoder must be 'minilm' or 'hashing', got {self.encoder!r}")
        if len(self.annotators) < 2:
            raise ValueError("annotators must name at least two simulated annotators (reliability needs overlap)")


@dataclass
class _Pool:
    """The recorded pool: pair id -> (visitor, the two simulated assets as recorded, A first)."""

    pairs: dict[int, tuple[Any, Any, Any]] = field(default_factory=dict)


def _draw(world: GenerationWorld, rng: np.random.Generator, tag: str) -> tuple[Any, list[Any]]:
    """One random pair of the world, as the eval sets are drawn: a visitor, an item, two arms or trait sets."""
    visitor = world.visitors[int(rng.integers(len(world.visitors)))]
    item = world.items[int(rng.integers(len(world.items)))]
    if rng.random() < COVER_SHARE:
        arm_a, arm_b = world.two_arms(rng)
        return visitor, [world.cover(visitor, item, arm, f"{tag}{side}", rng) for arm, side in ((arm_a, "a"), (arm_b, "b"))]
    traits = world.two_traits(rng)
    return visitor, [world.caption(visitor, item, t, f"{tag}{side}", rng) for t, side in zip(traits, "ab")]


def _extra(sim: Any, visitor: Any) -> dict[str, Any]:
    """What the generation loop stores in a simulated asset's params: the cover's arm, the caption's traits."""
    return sim.arm.as_params(visitor.segment) if sim.arm is not None else {"traits": list(sim.traits)}


def _setup(session_factory: Any, world: GenerationWorld, dataset: Any, annotators: tuple[AnnotatorSpec, ...]
           ) -> list[int]:
    from annotation import store

    with session_factory() as s, s.begin():
        store.sync_items(s, dataset.items[["item_id", "title", "year", "genres"]])
        for v in world.visitors:
            store.ensure_user(s, v.user_id, kind="dataset")
        return [store.get_or_create_annotator(s, a.name).id for a in annotators]


def _record_pool(session_factory: Any, world: GenerationWorld, asset_dir: Path, n: int, seed: int, run: str,
                 log: Callable[[str], Any]) -> _Pool:
    """`n` random pairs written as assets (covers through the AssetStore) and pairs, in random order."""
    from annotation import queue, store
    from generation.assets import AssetStore

    assets_store = AssetStore(asset_dir)
    rng = np.random.default_rng(seed + 11)
    ids_rng = random.Random(seed + 12)
    pool = _Pool()
    for start in range(0, n, 250):
        with session_factory() as s, s.begin():
            for t in range(start, min(n, start + 250)):
                visitor, sides = _draw(world, rng, f"p{t}")
                ids = [_record(store, s, assets_store, side, visitor, run, ids_rng, _extra(side, visitor)) for side in sides]
                pair = queue.create_pair(s, ids[0], ids[1], target_user_id=visitor.user_id)
                pool.pairs[int(pair.id)] = (visitor, sides[0], sides[1])
        log(f"sim-labeling: {min(n, start + 250):,} / {n:,} pool pairs recorded")
    return pool


def _eval_set(world: GenerationWorld, n: int, seed: int) -> list[tuple[Any, Any, Any, float, float]]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for e in range(n):
        visitor, (a, b) = _draw(world, rng, f"e{e}")
        out.append((visitor.features, a.candidate, b.candidate, a.value, b.value))
    return out


def _label(session_factory: Any, pool: _Pool, annotator_id: int, spec: AnnotatorSpec, rng: random.Random,
           at: dt.datetime, overlap: int, gold_rate: float = 0.0) -> bool:
    """The annotator takes their next pair from the queue and labels it; False when the queue had none."""
    from annotation import queue

    with session_factory() as s, s.begin():
        pair = queue.next_pair(s, annotator_id, overlap=overlap, now=at, gold_rate=gold_rate, gold_key="sim")
        if pair is None:
            return False
        _, a, b = pool.pairs[int(pair.id)]
        truly_a = a.value > b.value
        right = rng.random() < spec.accuracy
        choice = "A" if truly_a == right else "B"
        queue.record_preference(s, seeded_uuid(rng), pair.id, annotator_id, choice,
                                time_spent_ms=int(1000 * (2 + 6 * spec.accuracy)), at=at, leased_only=True)
    return True


def _train(session_factory: Any, world: GenerationWorld, encoder: Any, weights: dict[str, float] | None = None,
           reward: Any = None):
    """The app's reward model (configured by `reward`, a RewardConfig; None: the default) fitted on the store's
    labels (`records_from_frames`), optionally weighted."""
    from annotation import store
    from generation.reward import RewardModel, records_from_frames

    with session_factory() as s:
        prefs, assets = store.preferences_frame(s), store.assets_frame(s)
    pairs, candidates = records_from_frames(prefs, assets, annotator_weights=weights)
    users = {v.user_id: v.features for v in world.visitors}
    return RewardModel(encoder, reward).fit(pairs, users, candidates), candidates, len(pairs)


def _encoder(name: str):
    from generation.reward import HashingEncoder, MiniLMEncoder

    return MiniLMEncoder() if name == "minilm" else HashingEncoder(128)


def _rank(session_factory: Any, model: Any, pool: _Pool, candidates: dict, overlap: int, batch: int) -> int:
    """Rank the waiting pairs with the model and store the order; returns how many were ranked."""
    from annotation import queue
    from generation.selection import priorities_from_order, rank_pairs

    with session_factory() as s:
        waiting = queue.waiting_pairs(s, overlap)
    triples, ids = [], []
    for pair_id, _kind, _user, a_id, b_id in waiting:
        visitor = pool.pairs[int(pair_id)][0]
        triples.append((visitor.features, candidates[str(a_id)], candidates[str(b_id)]))
        ids.append(int(pair_id))
    order = rank_pairs(model, triples, batch=batch)
    priorities = {ids[i]: p for i, p in priorities_from_order(order).items()}
    with session_factory() as s, s.begin():
        queue.set_priorities(s, priorities, reset=True)
    return len(priorities)


def labels_to_reach(curve: list[dict], target: float) -> int | None:
    """The first measured label count whose truth accuracy is at or above `target` (None: never)."""
    return next((p["labels"] for p in curve if p["truth_accuracy"] >= target), None)


def simulate_selection(session_factories: dict[str, Any], dataset: Any, asset_dir: Path, config: SelectionSimConfig,
                       log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run each arm of `config.arms` into its own migrated store (`session_factories[arm]`); see the docstring."""
    t0 = time.perf_counter()
    world = GenerationWorld(dataset, config.users, config.seed)
    eval_set = _eval_set(world, config.eval_pairs, config.seed)
    encoder = _encoder(config.encoder)  # one encoder: its cache serves every arm
    report: dict[str, Any] = {"config": {**asdict(config), "annotators": [asdict(a) for a in config.annotators]},
                              "arms": {}}
    for arm in config.arms:
        started = time.perf_counter()
        session_factory = session_factories[arm]
        annotator_ids = _setup(session_factory, world, dataset, config.annotators)
        pool = _record_pool(session_factory, world, asset_dir / f"selection-seed{config.seed}-{arm}", config.pool,
                            config.seed, f"selection-seed{config.seed}-{arm}", log)
        rng = random.Random(config.seed)  # the annotators' coin flips: the same sequence in every arm
        start = dt.datetime(2026, 1, 1) + dt.timedelta(days=config.seed)
        curve, t, seconds_ranking = [], 0, 0.0
        while t < config.max_labels:
            for _ in range(config.step):
                k = t % len(config.annotators)
                if not _label(session_factory, pool, annotator_ids[k], config.annotators[k], rng,
                              start + dt.timedelta(minutes=t), config.overlap):
                    raise RuntimeError(f"the queue ran dry after {t} labels: make the pool larger")
                t += 1
            model, candidates, n_pairs = _train(session_factory, world, encoder, reward=config.reward)
            point = {"labels": t, "truth_accuracy": _accuracy(model, eval_set), "n_pairs": n_pairs,
                     "l2": model.metrics["l2"]}
            curve.append(point)
            log(f"sim-selection seed {config.seed} {arm}: {t:,} labels -> truth accuracy "
                f"{point['truth_accuracy']:.3f}")
            if config.stop_at_target and point["truth_accuracy"] >= config.target:
                break
            if arm == "active" and t < config.max_labels:
                clock = time.perf_counter()
                _rank(session_factory, model, pool, candidates, config.overlap, config.step)
                seconds_ranking += time.perf_counter() - clock
        report["arms"][arm] = {"curve": curve, "labels_to_target": labels_to_reach(curve, config.target),
                               "seconds": time.perf_counter() - started, "seconds_ranking": seconds_ranking}
    arms = report["arms"]
    if "random" in arms and "active" in arms:
        r, a = arms["random"]["labels_to_target"], arms["active"]["labels_to_target"]
        report["fewer_labels"] = None if r is None or a is None else 1.0 - a / r
    report["seconds"] = time.perf_counter() - t0
    return report


def simulate_quality(session_factory: Any, dataset: Any, asset_dir: Path, config: QualitySimConfig,
                     log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Label with good and bad annotators, gold pairs mixed in; estimate reliability; weighted vs unweighted."""
    from annotation import queue
    from app.learning.quality import estimate_from_store, weights_for

    t0 = time.perf_counter()
    world = GenerationWorld(dataset, config.users, config.seed)
    eval_set = _eval_set(world, config.eval_pairs, config.seed)
    annotator_ids = _setup(session_factory, world, dataset, config.annotators)
    run = f"quality-seed{config.seed}"
    pool = _record_pool(session_factory, world, asset_dir / run, config.pool, config.seed, run, log)
    gold_ids = sorted(pool.pairs)[: config.gold]
    with session_factory() as s, s.begin():
        for pair_id in gold_ids:
            _, a, b = pool.pairs[pair_id]
            queue.set_gold(s, pair_id, "A" if a.value > b.value else "B", source="known")
    rng = random.Random(config.seed)
    start = dt.datetime(2026, 1, 1) + dt.timedelta(days=config.seed)
    t = 0
    while t < config.labels:
        k = t % len(config.annotators)
        if not _label(session_factory, pool, annotator_ids[k], config.annotators[k], rng,
                      start + dt.timedelta(minutes=t), config.overlap, gold_rate=config.gold_rate):
            raise RuntimeError(f"the queue ran dry after {t} labels: make the pool larger")
        t += 1
        if t % 500 == 0:
            log(f"sim-quality: {t:,} labels")
    estimate = estimate_from_store(session_factory)
    reliability = estimate.reliability
    weights = weights_for(reliability)
    encoder = _encoder(config.encoder)
    unweighted, _, n_plain = _train(session_factory, world, encoder)
    weighted, _, n_weighted = _train(session_factory, world, encoder, weights=weights)
    table = estimate.table.set_index("annotator")
    annotators = [{"name": a.name, "accuracy": a.accuracy, "reliability": float(table.loc[a.name, "reliability"]),
                   "labels": int(table.loc[a.name, "labels"]), "gold_labels": int(table.loc[a.name, "gold_labels"]),
                   "weight": weights.get(a.name, 0.0),
                   "flagged": bool(table.loc[a.name, "reliability"] < config.threshold)}
                  for a in config.annotators]
    report = {"config": {**asdict(config), "annotators": [asdict(a) for a in config.annotators]},
              "labels": t, "annotators": annotators,
              "unweighted": {"truth_accuracy": _accuracy(unweighted, eval_set), "pairs": n_plain},
              "weighted": {"truth_accuracy": _accuracy(weighted, eval_set), "pairs": n_weighted}}
    report["gain_points"] = 100.0 * (report["weighted"]["truth_accuracy"] - report["unweighted"]["truth_accuracy"])
    report["seconds"] = time.perf_counter() - t0
    for a in annotators:
        log(f"sim-quality: {a['name']:10s} true accuracy {a['accuracy']:.2f}, estimated reliability "
            f"{a['reliability']:.3f} from {a['labels']} labels ({a['gold_labels']} on gold), weight {a['weight']:.2f}"
            f"{', flagged' if a['flagged'] else ''}")
    log(f"sim-quality: truth accuracy weighted {report['weighted']['truth_accuracy']:.3f} vs unweighted "
        f"{report['unweighted']['truth_accuracy']:.3f} ({report['gain_points']:+.1f} points)")
    return report


def selection_summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Across seeds: each arm's mean labels to reach the target (None if an arm missed it in any seed), and how
    many fewer labels "active" needed than "random" (1 - mean active / mean random)."""
    arms = sorted({arm for run in runs.values() for arm in run["arms"]})
    means: dict[str, float | None] = {}
    for arm in arms:
        counts = [run["arms"][arm]["labels_to_target"] for run in runs.values() if arm in run["arms"]]
        means[arm] = None if not counts or any(c is None for c in counts) else float(np.mean(counts))
    out: dict[str, Any] = {"mean_labels_to_target": means,
                           "per_seed": {seed: {arm: r["labels_to_target"] for arm, r in run["arms"].items()}
                                        for seed, run in runs.items()}}
    if means.get("random") and means.get("active") is not None:
        out["fewer_labels"] = 1.0 - means["active"] / means["random"]
    return out
