"""Proof with a known truth for the generation loop: reward model, best-of-N and the prompt policy.

    python -m app.simulate --reward --annotators careful:0.95,average:0.8,sloppy:0.6 --labels 2000 --json out.json
    python -m app.simulate --reward --captions real --labels 1000 --trials 100 --json real.json   # the real LLM
    report = simulate_reward(session_factory, dataset, asset_dir, RewardSimConfig(labels=2000))  # from Python

The world (`app.simulate.generation_world`). Visitors are ml-100k users with their real profiles
(`generation.profile.build_profile` over their ratings); a hidden truth values each taste group's cover styles,
alphas and caption traits, and every asset adds its own quality that no model can see. Covers are simulated
renders (`sim/swatch`, stored as JPEG through `generation.assets.AssetStore`), captions are templates with their
traits switched on or off, or (`captions="real"`) the app's caption model's, their traits measured from the text.

The loop, one label per round, written through the store like the app: the prompt policy chooses a cover
style and alpha for the visitor's segment, `policy.partner` proposes the other side, an annotator labels the
pair (the truly better side with probability `accuracy`, per annotator, round-robin), and the policy learns
from the label and from a like on the card (weak evidence; the visitor likes the shown cover with probability
sigmoid(value - 1), and the like is stored as feedback). 30% of rounds are caption pairs. Then
the reward model is trained from the store's frames (`generation.reward.records_from_frames`) on the first
100, 500, ... labels (pairs split by time for its own held-out accuracy) and judged against the hidden
truth on fresh pairs; each checkpoint is recorded as an evaluation run. Best-of-N: N random candidates, the
model's pick against a random other one, judged by the hidden truth. Regret: the policy's choice against
the truly best (style, alpha) of the visitor's group. Everything is seeded.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.simulate.generation_world import (CAPTION_SOURCES, GROUPS, TRAITS, GenerationWorld, SimAsset, Visitor,
                                           group_of)
from app.simulate.shared import AnnotatorSpec, check_ranges, seeded_uuid
from generation.captions import DEFAULT_MODEL, RUNTIMES

COVER_SHARE = 0.7  # of rounds are cover pairs; the others are caption pairs
LIKE_OFFSET = 1.0  # p(like) = sigmoid(value - LIKE_OFFSET): a like is rarer than a view


@dataclass
class RewardSimConfig:
    labels: int = 2000
    checkpoints: tuple[int, ...] = (100, 500, 2000)
    users: int = 200
    annotators: tuple[AnnotatorSpec, ...] = (
        AnnotatorSpec("careful", 0.95), AnnotatorSpec("average", 0.8), AnnotatorSpec("sloppy", 0.6),
    )
    best_of: int = 4
    trials: int = 300  # best-of-N trials per kind
    holdout: int = 400  # labels after the last checkpoint's: the time-split test pairs of every checkpoint
    eval_pairs: int = 600  # fresh pairs of random arms judged against the truth per checkpoint
    encoder: str = "minilm"  # "minilm" (the real one) or "hashing" (cheap, for tests)
    captions: str = "template"  # "template" (traits switched on/off) or "real" (the caption model writes them)
    caption_model: str = DEFAULT_MODEL  # captions="real": a hub id, local dir or .gguf, as the app's setting
    caption_runtime: str = "auto"  # captions="real": as the app's VITRINE_CAPTION_RUNTIME
    caption_threads: int = 1  # captions="real": the model's CPU threads (a shared machine: one)
    seed: int = 0
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_ranges(self, [("labels", 10, 1_000_000), ("users", 2, 100_000), ("best_of", 2, 16),
                            ("holdout", 10, 1_000_000), ("trials", 1, 100_000), ("eval_pairs", 10, 1_000_000)])
        if not self.checkpoints or any(c < 10 or c > self.labels for c in self.checkpoints):
            raise ValueError(f"checkpoints must be label counts between 10 and labels={self.labels}, "
                             f"got {self.checkpoints!r}")
        if self.encoder not in ("minilm", "hashing"):
            raise ValueError(f"encoder must be 'minilm' or 'hashing', got {self.encoder!r}")
        if self.captions not in CAPTION_SOURCES:
            raise ValueError(f"captions must be one of {CAPTION_SOURCES}, got {self.captions!r}")
        if self.captions == "real" and not (isinstance(self.caption_model, str) and self.caption_model):
            raise ValueError(f"caption_model must name a model with captions='real', got {self.caption_model!r}")
        if self.caption_runtime not in RUNTIMES:
            raise ValueError(f"caption_runtime must be one of {RUNTIMES}, got {self.caption_runtime!r}")
        check_ranges(self, [("caption_threads", 1, 64)])
        if not self.annotators:
            raise ValueError("annotators must name at least one simulated annotator")


@dataclass
class RewardSimReport:
    config: dict
    labels: int = 0
    assets: int = 0
    likes: int = 0
    learning_curve: list[dict] = field(default_factory=list)
    best_of_n: dict = field(default_factory=dict)
    policy: dict = field(default_factory=dict)
    captions: dict = field(default_factory=dict)  # where captions came from; captions="real": made, fallback, ...
    seconds: float = 0.0


def _record(store: Any, s: Any, assets_store: Any, sim: SimAsset, visitor: Visitor, run: str, rng: random.Random,
            extra: dict[str, Any]) -> int:
    """Write a simulated asset through the store (a cover's picture through the AssetStore); returns its id."""
    from generation.assets import Asset, asset_key

    c = sim.candidate
    params = {"alpha": c.alpha, "keywords": list(c.keywords), "sim": {"run": run, "value": sim.value}, **extra}
    asset = Asset(kind=c.kind, item_id=c.item_id, user_id=visitor.user_id, generator=c.generator,
                  fallback=c.generator == "fallback",
                  prompt=c.prompt, negative_prompt="", seed=0, params=params, text=c.text,
                  content_hash=asset_key(c.kind, {"sim_run": run, "tag": c.asset_id}), personalized=True)
    if c.kind == "cover":
        assets_store.put(asset, c.image)
    return store.record_asset(s, {**asset.to_dict(), "event_id": seeded_uuid(rng)}).id


def simulate_reward(session_factory: Any, dataset: Any, asset_dir: Path, config: RewardSimConfig,
                    log=print) -> RewardSimReport:
    """Run the loop into the store behind `session_factory` (a migrated database) and measure; see the docstring."""
    from annotation import queue, store
    from generation.assets import AssetStore
    from generation.policy import PromptPolicy

    t0 = time.perf_counter()
    report = RewardSimReport(config={**asdict(config), "annotators": [asdict(a) for a in config.annotators],
                                     "now": None})
    captions = None
    if config.captions == "real":  # the app's caption model, loaded once; its captions cached by key in asset_dir
        from generation.captions import CaptionGenerator

        captions = CaptionGenerator(config.caption_model, asset_dir, device="cpu", runtime=config.caption_runtime,
                                    num_threads=config.caption_threads).load()
        log(f"sim-reward: real captions from {config.caption_model} "
            f"({captions.runtime_used or 'template: ' + str(captions.unavailable_reason)})")
    world = GenerationWorld(dataset, config.users, config.seed, captions=captions)
    run = f"reward-sim-seed{config.seed}"
    rng = random.Random(config.seed)
    nprng = np.random.default_rng(config.seed)
    policy = PromptPolicy(world.styles, world.alphas, seed=config.seed)
    assets_store = AssetStore(asset_dir)
    now = config.now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    start = now - dt.timedelta(minutes=config.labels + config.holdout + 1)
    log(f"sim-reward: {len(world.visitors)} visitors in groups "
        f"{ {g: sum(v.group == g for v in world.visitors) for g in GROUPS} }")

    with session_factory() as s, s.begin():
        store.sync_items(s, dataset.items[["item_id", "title", "year", "genres"]])
        for v in world.visitors:
            store.ensure_user(s, v.user_id, kind="dataset")
        annotator_ids = [store.get_or_create_annotator(s, a.name).id for a in config.annotators]

    # 1. the loop: policy -> pair -> label -> policy; every round through the store
    regrets, random_regrets, chosen_styles, caption_pairs_same = [], [], [], []
    for t in range(config.labels + config.holdout):
        visitor = world.visitors[int(nprng.integers(len(world.visitors)))]
        item = world.items[int(nprng.integers(len(world.items)))]
        at = start + dt.timedelta(minutes=t)
        if nprng.random() < COVER_SHARE:
            arm_a = policy.choose(visitor.segment)
            arm_b = policy.partner(arm_a)
            best = world.best_arm_value(visitor.group)
            regrets.append(best - world.truth.arm_value(visitor.group, arm_a.style.name, arm_a.alpha))
            random_regrets.append(best - float(np.mean([world.truth.arm_value(visitor.group, s.name, a)
                                                        for s in world.styles for a in world.alphas])))
            chosen_styles.append((t, visitor.segment, arm_a.style.name, arm_a.alpha))
            sides = [world.cover(visitor, item, arm, f"{t}{tag}", nprng) for arm, tag in ((arm_a, "a"), (arm_b, "b"))]
            extras = [arm_a.as_params(visitor.segment), arm_b.as_params(visitor.segment)]
        else:
            traits = world.two_traits(nprng)
            sides = [world.caption(visitor, item, tr, f"{t}{tag}", nprng) for tr, tag in zip(traits, "ab")]
            extras = [{"traits": list(side.traits)} for side in sides]  # measured, with real captions
            caption_pairs_same.append(sides[0].traits == sides[1].traits)
        if rng.random() < 0.5:  # the side shown first is random
            sides, extras = sides[::-1], extras[::-1]
        k = t % len(config.annotators)
        spec = config.annotators[k]
        truly_a = sides[0].value > sides[1].value
        right = rng.random() < spec.accuracy
        choice = "A" if truly_a == right else "B"
        liked = False
        if sides[0].arm is not None:  # the visitor sees the policy's cover on a card, and may like it
            shown = next(side for side in sides if side.arm == arm_a)
            liked = bool(nprng.random() < 1.0 / (1.0 + math.exp(-(shown.value - LIKE_OFFSET))))
        with session_factory() as s, s.begin():
            ids = [_record(store, s, assets_store, side, visitor, run, rng, extra)
                   for side, extra in zip(sides, extras)]
            queue.record_preference(s, seeded_uuid(rng), (ids[0], ids[1]), annotator_ids[k], choice,
                                    time_spent_ms=int(1000 * (2 + 6 * spec.accuracy)), at=at)
            if liked:
                store.record_feedback(s, seeded_uuid(rng), visitor.user_id, item.item_id, "like", at=at)
        report.labels += 1
        report.assets += 2
        report.likes += int(liked)
        if sides[0].arm is not None:  # the policy learns from the label and from the like (weak evidence)
            winner, loser = (sides[0], sides[1]) if choice == "A" else (sides[1], sides[0])
            policy.update_pair(visitor.segment, winner.arm, loser.arm)
            if liked:
                policy.update_like(visitor.segment, arm_a)
        if (t + 1) % 500 == 0:
            log(f"sim-reward: {t + 1:,} labels")

    loop_stats = {"made": world.caption_stats.made, "fallback": world.caption_stats.fallback}
    report.captions = {"source": config.captions, "loop_pairs": len(caption_pairs_same),
                       "loop_pairs_same_traits": int(sum(caption_pairs_same))}
    measure_reward(session_factory, world, config, report, run, now, log)
    stats = world.caption_stats
    if config.captions == "real":
        report.captions.update(
            model=config.caption_model, runtime=captions.runtime_used if captions is not None else None,
            made=stats.made, fallback=stats.fallback, loop_made=loop_stats["made"],
            loop_fallback=loop_stats["fallback"], seconds=stats.seconds,
            trait_share={name: n / max(1, stats.made) for name, n in zip(TRAITS, stats.traits)})
        log(f"sim-reward: {stats.made:,} real captions ({stats.fallback:,} the template fallback) in "
            f"{stats.seconds:.0f} s; caption pairs with the same measured traits: "
            f"{sum(caption_pairs_same)} of {len(caption_pairs_same)}")

    # 4. the policy's regret
    regrets_arr, random_arr = np.array(regrets), np.array(random_regrets)
    tenth = max(1, len(regrets_arr) // 10)
    report.policy = {
        "cover_rounds": int(len(regrets_arr)),
        "regret_total": float(regrets_arr.sum()),
        "regret_mean": float(regrets_arr.mean()),
        "regret_mean_first_10pct": float(regrets_arr[:tenth].mean()),
        "regret_mean_last_10pct": float(regrets_arr[-tenth:].mean()),
        "random_policy_regret_mean": float(random_arr.mean()),
        "segments": {seg: {"best_arm": policy.best(seg).key,
                           "true_best": max(((s.name, a) for s in world.styles for a in world.alphas),
                                            key=lambda sa: world.truth.arm_value(group_of(seg), *sa))}
                     for seg in sorted(policy.counts)},
    }
    log(f"sim-reward: policy regret per cover round {report.policy['regret_mean_first_10pct']:.3f} (first 10%) -> "
        f"{report.policy['regret_mean_last_10pct']:.3f} (last 10%); random choice {random_arr.mean():.3f}")
    report.seconds = time.perf_counter() - t0
    return report


def _accuracy(model: Any, items: list[tuple[Any, Any, Any, float, float]], kind: str | None = None) -> float:
    """Share of (user, cand_a, cand_b, value_a, value_b) where the model orders a and b as the truth does; of the
    pairs of one `kind` ("cover", "caption") when given."""
    agree = []
    for user, a, b, va, vb in items:
        if kind is not None and a.kind != kind:
            continue
        scores = model.score(user, [a, b])
        agree.append(0.5 if scores[0] == scores[1] else float((scores[0] > scores[1]) == (va > vb)))
    return float(np.mean(agree)) if agree else float("nan")


def measure_reward(session_factory: Any, world: GenerationWorld, config: RewardSimConfig, report: RewardSimReport,
                   run: str, now: dt.datetime, log=print) -> None:
    """Train the reward model from the store at each checkpoint and judge it against the hidden truth: on the
    `holdout` labelled pairs that come after every training pair (a time split), and on fresh pairs of random
    arms; then best-of-N with the last model."""
    from annotation import store
    from generation.reward import HashingEncoder, MiniLMEncoder, RewardModel, records_from_frames

    with session_factory() as s:
        prefs = store.preferences_frame(s)
        assets = store.assets_frame(s)
    mine = assets["params"].map(lambda p: isinstance(p, dict) and (p.get("sim") or {}).get("run") == run)
    assets = assets[mine]
    values = {str(int(a)): float(p["sim"]["value"]) for a, p in zip(assets["asset_id"], assets["params"])}
    ids = set(assets["asset_id"].astype(int))
    prefs = prefs[prefs["asset_a_id"].isin(ids) & prefs["asset_b_id"].isin(ids)]
    pairs, candidates = records_from_frames(prefs, assets)
    pairs.sort(key=lambda p: p.at)
    users = {v.user_id: v.features for v in world.visitors}
    encoder = MiniLMEncoder() if config.encoder == "minilm" else HashingEncoder(128)
    eval_rng = np.random.default_rng(config.seed + 1)
    eval_set = []
    for e in range(config.eval_pairs):
        visitor = world.visitors[int(eval_rng.integers(len(world.visitors)))]
        item = world.items[int(eval_rng.integers(len(world.items)))]
        if eval_rng.random() < COVER_SHARE:
            arm_a, arm_b = world.two_arms(eval_rng)
            sides = [world.cover(visitor, item, arm, f"e{e}{tag}", eval_rng)
                     for arm, tag in ((arm_a, "a"), (arm_b, "b"))]
        else:
            tr = world.two_traits(eval_rng)
            sides = [world.caption(visitor, item, x, f"e{e}{tag}", eval_rng) for x, tag in zip(tr, "ab")]
        eval_set.append((visitor, sides))
    fresh = [(v.features, a.candidate, b.candidate, a.value, b.value) for v, (a, b) in eval_set]
    later = pairs[config.labels:]  # labelled after every checkpoint's training pairs
    heldout = [(users[p.user_id], candidates[p.winner], candidates[p.loser], values[p.winner], values[p.loser])
               for p in later]
    # the ceiling on the later caption pairs: an oracle that knows the truth's value of each side's traits, not
    # the noise (a tie, e.g. two captions with the same traits, counts as a coin toss)
    traits = {str(int(a)): tuple(p["traits"]) for a, k, p in zip(assets["asset_id"], assets["kind"], assets["params"])
              if k == "caption"}
    groups = {v.user_id: v.group for v in world.visitors}
    oracle, same = [], 0
    for p in later:
        if candidates[p.winner].kind == "caption":
            ow, ol = (world.truth.caption_value(groups[p.user_id], traits[a]) for a in (p.winner, p.loser))
            truly = values[p.winner] > values[p.loser]  # the label's winner may be the worse side
            oracle.append(0.5 if ow == ol else float((ow > ol) == truly))
            same += traits[p.winner] == traits[p.loser]
    report.captions.update(later_pairs=len(oracle), later_pairs_same_traits=same,
                           later_pairs_oracle_accuracy=float(np.mean(oracle)) if oracle else float("nan"))
    model = None
    for n in sorted(set(config.checkpoints)):
        model = RewardModel(encoder).fit(pairs[:n], users, candidates)
        point = {"labels": n, "truth_accuracy": _accuracy(model, heldout),
                 "truth_accuracy_by_kind": {kind: _accuracy(model, heldout, kind) for kind in ("cover", "caption")},
                 "n_test_by_kind": {kind: sum(a.kind == kind for _, a, _, _, _ in heldout)
                                    for kind in ("cover", "caption")},
                 "fresh_truth_accuracy_by_kind": {kind: _accuracy(model, fresh, kind) for kind in ("cover", "caption")},
                 "label_accuracy": model.pair_accuracy(later, users, candidates),
                 "fresh_truth_accuracy": _accuracy(model, fresh),
                 "heldout_accuracy": model.metrics["heldout_accuracy"], "n_test": len(later),
                 "version": model.version}
        report.learning_curve.append(point)
        with session_factory() as s, s.begin():
            store.record_eval_run(s, "reward", "sim-reward", "time", {
                "heldout_accuracy": point["heldout_accuracy"], "truth_accuracy": point["truth_accuracy"],
                "n_pairs": float(model.metrics["n_pairs"]),
            }, config={"version": model.version, "seed": config.seed, "simulated": True, "labels": n}, at=now)
        log(f"sim-reward: {n:,} labels -> later pairs: {point['truth_accuracy']:.3f} vs truth (captions "
            f"{point['truth_accuracy_by_kind']['caption']:.3f}, covers {point['truth_accuracy_by_kind']['cover']:.3f}), "
            f"{point['label_accuracy']:.3f} vs labels; fresh random pairs {point['fresh_truth_accuracy']:.3f} vs "
            f"truth; own time split {point['heldout_accuracy']:.3f}")

    # 3. best-of-N with the last model: its pick against a random other candidate, judged by the truth
    bon_rng = np.random.default_rng(config.seed + 2)
    for kind in ("cover", "caption"):
        wins = []
        for trial in range(config.trials):
            visitor = world.visitors[int(bon_rng.integers(len(world.visitors)))]
            item = world.items[int(bon_rng.integers(len(world.items)))]
            if kind == "cover":
                cands = [world.cover(visitor, item, world.random_arm(bon_rng), f"b{trial}-{i}", bon_rng)
                         for i in range(config.best_of)]
            else:
                cands = [world.caption(visitor, item, world.random_traits(bon_rng), f"b{trial}-{i}", bon_rng)
                         for i in range(config.best_of)]
            scores = model.score(visitor.features, [c.candidate for c in cands])
            pick = int(np.argmax(scores))
            other = int(bon_rng.choice([i for i in range(len(cands)) if i != pick]))
            wins.append(cands[pick].value > cands[other].value)
        report.best_of_n[kind] = {"n": config.best_of, "trials": config.trials, "win_rate": float(np.mean(wins))}
        log(f"sim-reward: best-of-{config.best_of} {kind}s beat a random candidate in {np.mean(wins):.1%} of pairs")
