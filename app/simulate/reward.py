"""Proof with a known truth for the generation loop: reward model, best-of-N and the prompt policy.

    python -m app.simulate --reward --annotators careful:0.95,average:0.8,sloppy:0.6 --labels 2000 --json out.json

The world. Visitors are ml-100k users with their real profiles (`generation.profile.build_profile` over their
ratings). A hidden truth gives each taste group (a user's strongest genre, grouped into four: thrill, light,
heart, dark) a value for each cover style (`generation.policy.DEFAULT_STYLES`, N(0, 1)), a favourite alpha
(a penalty of 2 (alpha - best)^2 away from it) and weights for four caption traits (names a film the user
liked, names a genre, long, exclaims); every single asset adds its own quality N(0, 0.3) that no model can see.
Covers are simulated renders (`sim/swatch`: a picture whose hue follows the style and saturation the alpha,
stored as JPEG through `generation.assets.AssetStore`), captions are templates with the traits switched on
or off.

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

import argparse
import datetime as dt
import hashlib
import json
import math
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from app.simulate.traffic import AnnotatorSpec

GROUPS = {
    "thrill": ("action", "adventure", "scifi", "thriller", "war", "western"),
    "light": ("comedy", "childrens", "animation", "musical", "fantasy", "cold"),
    "heart": ("drama", "romance", "documentary"),
    "dark": ("horror", "crime", "mystery", "filmnoir"),
}
TRAITS = ("names_liked_title", "names_genre", "long", "exclaims")
ASSET_NOISE = 0.3  # each asset's own quality, invisible to every model
ALPHA_PENALTY = 2.0
COVER_SHARE = 0.7
LIKE_OFFSET = 1.0  # p(like) = sigmoid(value - LIKE_OFFSET): a like is rarer than a view
GENERATORS = {"cover": "sim/swatch", "caption": "sim/template"}


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
    seed: int = 0
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        for name, low, high in (("labels", 10, 1_000_000), ("users", 2, 100_000), ("best_of", 2, 16),
                                ("holdout", 10, 1_000_000),
                                ("trials", 1, 100_000), ("eval_pairs", 10, 1_000_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
        if not self.checkpoints or any(c < 10 or c > self.labels for c in self.checkpoints):
            raise ValueError(f"checkpoints must be label counts between 10 and labels={self.labels}, "
                             f"got {self.checkpoints!r}")
        if self.encoder not in ("minilm", "hashing"):
            raise ValueError(f"encoder must be 'minilm' or 'hashing', got {self.encoder!r}")
        if not self.annotators:
            raise ValueError("annotators must name at least one simulated annotator")


@dataclass
class Visitor:
    user_id: str
    profile: Any  # generation.profile.UserProfile
    features: Any  # generation.reward.UserFeatures
    segment: str
    group: str


@dataclass
class Truth:
    style: dict[str, dict[str, float]]  # group -> style name -> value
    best_alpha: dict[str, float]
    traits: dict[str, np.ndarray]  # group -> weight per TRAITS

    def arm_value(self, group: str, style: str, alpha: float) -> float:
        return self.style[group][style] - ALPHA_PENALTY * (alpha - self.best_alpha[group]) ** 2

    def caption_value(self, group: str, traits: Sequence[int]) -> float:
        return float(self.traits[group] @ np.asarray(traits, dtype=float))


@dataclass
class SimAsset:
    candidate: Any  # generation.reward.Candidate
    value: float  # hidden truth for its visitor
    arm: Any = None  # generation.policy.Arm for covers
    traits: tuple[int, ...] = ()


@dataclass
class RewardSimReport:
    config: dict
    labels: int = 0
    assets: int = 0
    likes: int = 0
    learning_curve: list[dict] = field(default_factory=list)
    best_of_n: dict = field(default_factory=dict)
    policy: dict = field(default_factory=dict)
    seconds: float = 0.0


def group_of(segment: str) -> str:
    for group, keys in GROUPS.items():
        if segment in keys:
            return group
    return "light"


def make_truth(styles: Sequence[Any], alphas: Sequence[float], seed: int) -> Truth:
    rng = np.random.default_rng(seed + 7919)
    style = {g: {s.name: float(rng.normal()) for s in styles} for g in GROUPS}
    best_alpha = {g: float(alphas[int(rng.integers(len(alphas)))]) for g in GROUPS}
    traits = {g: rng.normal(size=len(TRAITS)) for g in GROUPS}
    return Truth(style, best_alpha, traits)


def swatch(style: str, alpha: float, seed: int):
    """A 48x72 simulated render: hue from the style, saturation from alpha, seeded texture."""
    from PIL import Image
    import colorsys

    hue = int(hashlib.sha256(style.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    rng = np.random.default_rng(seed)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.25 + 0.7 * alpha, 0.55 + 0.4 * rng.random())
    base = np.array([r, g, b]) * 255.0
    texture = rng.normal(0, 18, size=(72, 48, 1)) + np.linspace(-30, 30, 72)[:, None, None]
    pixels = np.clip(base[None, None, :] + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def caption_text(item: Any, visitor: Visitor, traits: Sequence[int]) -> str:
    liked_title, genre_trait, long, exclaims = traits
    liked = visitor.profile.liked_titles[0] if visitor.profile.liked_titles else None
    text = f"Because you enjoyed {liked}, {item.title} is one for you" if liked_title and liked else \
        f"{item.title} is one for you"
    if genre_trait and item.genres:
        shared = [g for g in item.genres if g in visitor.profile.top_genres] or list(item.genres)
        text += f": a {shared[0].lower()} film"
    if long:
        text += " with a story that stays with you long after the credits roll"
    return text + ("!" if exclaims else ".")


class World:
    """Visitors, items, the hidden truth and candidate makers; one seeded RNG per purpose."""

    def __init__(self, dataset: Any, config: RewardSimConfig) -> None:
        from generation.policy import DEFAULT_ALPHAS, DEFAULT_STYLES, segment_of
        from generation.profile import build_profile
        from generation.prompts import ItemInfo
        from generation.reward import UserFeatures

        self.config = config
        rng = random.Random(config.seed)
        items = dataset.items
        import pandas as pd

        self.items = [ItemInfo(str(r.item_id), str(r.title), None if pd.isna(r.year) else int(r.year),
                               list(r.genres), str(r.text)) for r in items.itertuples(index=False)]
        by_id = {it.item_id: it for it in self.items}
        inter = dataset.interactions.sort_values(["user_id", "timestamp"], kind="stable")
        users = sorted(inter["user_id"].unique(), key=int)
        chosen = rng.sample(users, min(config.users, len(users)))
        self.visitors: list[Visitor] = []
        grouped = {u: g for u, g in inter[inter["user_id"].isin(chosen)].groupby("user_id")}
        for uid in chosen:
            rows = grouped[uid]
            history = [{"item_id": i, "title": by_id[i].title, "text": by_id[i].text, "genres": by_id[i].genres,
                        "year": by_id[i].year, "rating": float(r), "timestamp": int(t)}
                       for i, r, t in rows[["item_id", "rating", "timestamp"]].itertuples(index=False)]
            profile = build_profile(str(uid), history)
            liked = [h["text"] for h in reversed(history) if h["rating"] >= 4][:20]
            features = UserFeatures.from_profile(profile, liked)
            segment = segment_of(profile)
            self.visitors.append(Visitor(str(uid), profile, features, segment, group_of(segment)))
        self.styles = list(DEFAULT_STYLES)
        self.alphas = list(DEFAULT_ALPHAS)
        self.truth = make_truth(self.styles, self.alphas, config.seed)

    def best_arm_value(self, group: str) -> float:
        return max(self.truth.arm_value(group, s.name, a) for s in self.styles for a in self.alphas)

    def cover(self, visitor: Visitor, item: Any, arm: Any, tag: str, rng: np.random.Generator) -> SimAsset:
        from generation.policy import styled_profile
        from generation.prompts import build_prompt
        from generation.reward import Candidate

        prompt = build_prompt(item, styled_profile(visitor.profile, arm), arm.alpha)
        image = swatch(arm.style.name, arm.alpha, int(rng.integers(2**31)))
        value = self.truth.arm_value(visitor.group, arm.style.name, arm.alpha) + float(rng.normal(0, ASSET_NOISE))
        candidate = Candidate(tag, "cover", prompt.text, arm.style.keywords, arm.alpha, GENERATORS["cover"],
                              image=image, item_id=item.item_id)
        return SimAsset(candidate, value, arm=arm)

    def caption(self, visitor: Visitor, item: Any, traits: Sequence[int], tag: str,
                rng: np.random.Generator) -> SimAsset:
        from generation.captions import caption_request
        from generation.reward import Candidate

        text = caption_text(item, visitor, traits)
        value = self.truth.caption_value(visitor.group, traits) + float(rng.normal(0, ASSET_NOISE))
        candidate = Candidate(tag, "caption", caption_request(item, visitor.profile, 220), (), 0.0,
                              GENERATORS["caption"], text=text, item_id=item.item_id)
        return SimAsset(candidate, value, traits=tuple(traits))

    def random_arm(self, rng: np.random.Generator):
        from generation.policy import Arm

        return Arm(self.styles[int(rng.integers(len(self.styles)))], self.alphas[int(rng.integers(len(self.alphas)))])

    def random_traits(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(x) for x in rng.integers(0, 2, size=len(TRAITS)))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _record(store: Any, s: Any, assets_store: Any, sim: SimAsset, visitor: Visitor, run: str, rng: random.Random,
            extra: dict[str, Any]) -> int:
    """Write a simulated asset through the store (a cover's picture through the AssetStore); returns its id."""
    from generation.assets import Asset, asset_key

    c = sim.candidate
    params = {"alpha": c.alpha, "keywords": list(c.keywords), "sim": {"run": run, "value": sim.value}, **extra}
    asset = Asset(kind=c.kind, item_id=c.item_id, user_id=visitor.user_id, generator=c.generator, fallback=False,
                  prompt=c.prompt, negative_prompt="", seed=0, params=params, text=c.text,
                  content_hash=asset_key(c.kind, {"sim_run": run, "tag": c.asset_id}), personalized=True)
    if c.kind == "cover":
        assets_store.put(asset, c.image)
    return store.record_asset(s, {**asset.to_dict(), "event_id": _uuid(rng)}).id


def simulate_reward(session_factory: Any, dataset: Any, asset_dir: Path, config: RewardSimConfig,
                    log=print) -> RewardSimReport:
    """Run the loop into the store behind `session_factory` (a migrated database) and measure; see the docstring."""
    from annotation import queue, store
    from generation.assets import AssetStore
    from generation.policy import PromptPolicy

    t0 = time.perf_counter()
    report = RewardSimReport(config={**asdict(config), "annotators": [asdict(a) for a in config.annotators],
                                     "now": None})
    world = World(dataset, config)
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
    regrets, random_regrets, chosen_styles = [], [], []
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
            traits = [world.random_traits(nprng) for _ in range(2)]
            while traits[1] == traits[0]:
                traits[1] = world.random_traits(nprng)
            sides = [world.caption(visitor, item, tr, f"{t}{tag}", nprng) for tr, tag in zip(traits, "ab")]
            extras = [{"traits": list(tr)} for tr in traits]
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
            queue.record_preference(s, _uuid(rng), (ids[0], ids[1]), annotator_ids[k], choice,
                                    time_spent_ms=int(1000 * (2 + 6 * spec.accuracy)), at=at)
            if liked:
                store.record_feedback(s, _uuid(rng), visitor.user_id, item.item_id, "like", at=at)
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

    measure_reward(session_factory, world, config, report, run, now, log)

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


def _accuracy(model: Any, items: list[tuple[Any, Any, Any, float, float]]) -> float:
    """Share of (user, cand_a, cand_b, value_a, value_b) where the model orders a and b as the truth does."""
    agree = []
    for user, a, b, va, vb in items:
        scores = model.score(user, [a, b])
        agree.append(0.5 if scores[0] == scores[1] else float((scores[0] > scores[1]) == (va > vb)))
    return float(np.mean(agree)) if agree else float("nan")


def measure_reward(session_factory: Any, world: World, config: RewardSimConfig, report: RewardSimReport, run: str,
                   now: dt.datetime, log=print) -> None:
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
            arm_a = world.random_arm(eval_rng)
            arm_b = world.random_arm(eval_rng)
            while arm_b == arm_a:
                arm_b = world.random_arm(eval_rng)
            sides = [world.cover(visitor, item, arm, f"e{e}{tag}", eval_rng)
                     for arm, tag in ((arm_a, "a"), (arm_b, "b"))]
        else:
            tr = [world.random_traits(eval_rng) for _ in range(2)]
            while tr[1] == tr[0]:
                tr[1] = world.random_traits(eval_rng)
            sides = [world.caption(visitor, item, x, f"e{e}{tag}", eval_rng) for x, tag in zip(tr, "ab")]
        eval_set.append((visitor, sides))
    fresh = [(v.features, a.candidate, b.candidate, a.value, b.value) for v, (a, b) in eval_set]
    later = pairs[config.labels:]  # labelled after every checkpoint's training pairs
    heldout = [(users[p.user_id], candidates[p.winner], candidates[p.loser], values[p.winner], values[p.loser])
               for p in later]
    model = None
    for n in sorted(set(config.checkpoints)):
        model = RewardModel(encoder).fit(pairs[:n], users, candidates)
        point = {"labels": n, "truth_accuracy": _accuracy(model, heldout),
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
        log(f"sim-reward: {n:,} labels -> later pairs: {point['truth_accuracy']:.3f} vs truth, "
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


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, RewardSimConfig]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate --reward", description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", default=None,
                        help="comma-separated name:accuracy, default careful:0.95,average:0.8,sloppy:0.6")
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--checkpoints", default=None, help="label counts to train at, default 100,500,LABELS")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--best-of", type=int, default=4)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--holdout", type=int, default=400, help="labels after the last checkpoint, for testing")
    parser.add_argument("--eval-pairs", type=int, default=600)
    parser.add_argument("--encoder", default="minilm", choices=("minilm", "hashing"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    args = parser.parse_args(argv)
    try:
        kwargs: dict[str, Any] = {}
        if args.annotators:
            kwargs["annotators"] = tuple(AnnotatorSpec.parse(t.strip()) for t in args.annotators.split(",")
                                         if t.strip())
        checkpoints = (tuple(int(c) for c in args.checkpoints.split(",")) if args.checkpoints else
                       tuple(c for c in (100, 500) if c < args.labels) + (args.labels,))
        config = RewardSimConfig(labels=args.labels, checkpoints=checkpoints, users=args.users, best_of=args.best_of,
                                 trials=args.trials, holdout=args.holdout, eval_pairs=args.eval_pairs,
                                 encoder=args.encoder,
                                 seed=args.seed, **kwargs)
    except ValueError as exc:
        parser.error(str(exc))
    return args, config


def main(argv: Sequence[str] | None = None) -> int:
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.settings import load_settings
    from recommenders.data import load_dataset

    import torch

    torch.set_num_threads(1)
    args, config = parse_args(argv)
    settings = load_settings()
    url = args.database_url or settings.database_url
    upgrade(url)
    dataset = load_dataset(settings.dataset, settings.data_dir)
    engine = make_engine(url)
    try:
        report = simulate_reward(make_session_factory(engine), dataset, settings.data_dir / "assets", config,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        engine.dispose()
    out = asdict(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    curve = ", ".join(f"{p['labels']}: {p['truth_accuracy']:.3f}" for p in report.learning_curve)
    print(f"sim-reward: done in {report.seconds:.1f} s into {url}: {report.labels:,} labels, {report.assets:,} assets; "
          f"accuracy vs truth {curve}; best-of-{config.best_of} cover win rate "
          f"{report.best_of_n['cover']['win_rate']:.1%}, caption {report.best_of_n['caption']['win_rate']:.1%}; "
          f"policy regret {report.policy['regret_mean_first_10pct']:.3f} -> "
          f"{report.policy['regret_mean_last_10pct']:.3f}"
          f" (random {report.policy['random_policy_regret_mean']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
