"""Proof with known truth: does the learning loop help? Simulated sparse visitors, four arms, same random draws.

    python -m app.simulate --rounds 5 --users 200 --retrain --json loop.json
    report = run_loop(dataset, LoopConfig(rounds=5, users=200), workdir)   # the same, from Python

Visitors. `users` ml-100k users with at least `min_ratings` ratings arrive with their `known` (5) earliest
ratings; the rest of their ratings are the truth, never given to any model. The dataset the models train on
is everyone else's ratings plus the visitors' known ones.

Behaviour (a position-based click model, stated): each round a visitor sees a slate of `slate` (10) items
from the arm's served model. Position k (1-based) is examined with probability theta[k] = k ** -eta
(eta 0.7: 1.0 at the top, 0.2 at position 10). An examined item is liked with probability `p_like` (0.9)
when the visitor rated it 4 or 5 in the truth, else with probability `p_noise` (0.02: noise likes of items
they never rated or rated lower); an examined item rated 1 or 2 that is not liked is disliked with
probability `p_dislike` (0.5). Every liked or disliked item is revealed to the system; nothing is ever shown
twice to a visitor.

Arms, under the same random draws (one examination draw per visitor, round and position; one like and one
dislike draw per visitor and item, so the same item at the same position gets the same answer in every arm):
- static (control): the served model (`model`, fitted on the dataset; `python -m app.simulate` defaults to the
  model the app serves) ranks from the known ratings only and never learns; it only leaves out what it already
  showed;
- fold-in: the same model, each visitor's likes and dislikes folded into the ranking at once;
- visit: fold-in, and what the visitor's earlier slates showed and they passed over (shown, neither liked nor
  disliked) counts too (`skipped`: `recommenders.visit`), as the app does within a visit;
- retrain (treatment: visit + gated retraining): visit, and after each round `app.learning.retrain.retrain`
  builds a candidate on the dataset + every logged like and dislike (through the store, the registry and the
  gate, exactly as `python -m app.train`), which serves the next round only when the gate promotes it.
  Without `retrain` the treatment is the visit arm.

JSON (`--json`): `rounds` (the treatment) and `control.rounds`, and every arm under `arms`: one entry per round
with round, like_rate, ndcg@10 (+ 95% intervals, ndcg@10_loved, cumulative_likes), promoted (the gate's
decision on the candidate built after that round; None for arms that never retrain) and served_version;
`comparisons` (paired bootstrap differences: each arm against the control, and each arm against the one it
adds to, e.g. "retrain - visit" is the retrain's own share), `retrain` (every gate decision and its reason), `ips`.

Per round and arm: like rate (likes / shown items) and NDCG@10 of the arm's ranking against the truth items
not yet revealed to it (so a gain is learned, not remembered): `ndcg@10` counts every held-out rating as
relevant (RecBole's convention), `ndcg@10_loved` only those rated 4-5. Intervals: 95% normal intervals of
per-arm means; treatment - control differences get a paired bootstrap over visitors (seeded).

IPS (`--ips`, default on): the static model logs `ips_replicates` slates per visitor with epsilon-exploration
(`recommenders.ips.explore_propensities`); examination is estimated from the randomised slates and the like
rate of second models (itemknn, pop) is estimated by IPS and SNIPS and compared with its exact simulated
truth (the expectation under the click model above).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from app.simulate.shared import check_ranges, seeded_uuid

ARMS = ("static", "fold-in", "visit", "retrain")
CONTROL, TREATMENT = "static", "retrain"
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


@dataclass
class LoopConfig:
    """The simulation's knobs; the defaults carry the why."""

    users: int = 200  # simulated visitors
    rounds: int = 5  # slates each visitor sees
    slate: int = 10  # items per slate
    known: int = 5  # ratings a visitor arrives with (their earliest): a sparse visitor
    min_ratings: int = 40  # visitors have at least this many ratings, so the truth is not empty after 5 rounds
    eta: float = 0.7  # position bias: theta[k] = k ** -eta
    p_like: float = 0.9  # P(like | examined, rated 4-5)
    p_noise: float = 0.02  # P(like | examined, otherwise): noise likes
    p_dislike: float = 0.5  # P(dislike | examined, rated 1-2, not liked)
    retrain: bool = True  # run the retrain arm (fold-in + gated retraining)
    model: str = "ease"  # the served model family (the command line's default: what `python -m app` serves)
    tolerance: float = 0.0  # the gate's tolerance
    ips: bool = True
    ips_replicates: int = 10  # logged slates per visitor for the IPS check
    ips_epsilon: float = 0.2  # share of logged slates that explore
    ips_top: int = 50  # exploration draws from the logger's top 50
    ips_candidates: tuple[str, ...] = ("itemknn", "pop")
    n_boot: int = 2000  # bootstrap resamples of the paired differences
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, [("users", 2, 5000), ("rounds", 1, 100), ("slate", 1, 100), ("known", 1, 100),
                            ("ips_replicates", 1, 1000), ("n_boot", 10, 100_000)],
                     ("p_like", "p_noise", "p_dislike", "ips_epsilon"))
        if self.eta < 0:
            raise ValueError(f"eta: expected a non-negative position-bias exponent, got {self.eta!r}")
        if self.ips_top < self.slate:
            raise ValueError(f"ips_top: expected at least slate={self.slate}, got {self.ips_top}")

    @property
    def theta(self) -> np.ndarray:
        from recommenders.ips import power_law

        return power_law(self.slate, self.eta)


@dataclass
class LoopWorld:
    visitors: list[str]
    known: dict[str, list[str]]  # visitor -> known item ids (in the dataset the models see)
    truth: dict[str, dict[str, float]]  # visitor -> held-out item -> rating
    base: Any  # recommenders.data.Dataset: everyone else + the visitors' known ratings
    item_ids: list[str]


def make_world(dataset, config: LoopConfig) -> LoopWorld:
    """Pick the visitors (seeded), split their ratings into known (earliest) and truth (the rest)."""
    inter = dataset.interactions.assign(user_id=lambda d: d["user_id"].astype(str),
                                        item_id=lambda d: d["item_id"].astype(str))
    counts = inter.groupby("user_id").size()
    eligible = sorted(counts[counts >= max(config.min_ratings, config.known + 1)].index, key=lambda u: (len(u), u))
    if len(eligible) < config.users:
        raise ValueError(f"users: only {len(eligible)} users have {config.min_ratings}+ ratings, asked for "
                         f"{config.users}")
    visitors = sorted(random.Random(config.seed).sample(eligible, config.users), key=lambda u: (len(u), u))
    chosen = set(visitors)
    mine = inter[inter["user_id"].isin(chosen)].sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    rank = mine.groupby("user_id").cumcount()
    known_rows = mine[rank < config.known]
    held = mine[rank >= config.known]
    known = {u: g["item_id"].tolist() for u, g in known_rows.groupby("user_id")}
    truth = {u: dict(zip(g["item_id"], g["rating"].astype(float))) for u, g in held.groupby("user_id")}
    base = pd.concat([inter[~inter["user_id"].isin(chosen)], known_rows]).reset_index(drop=True)
    return LoopWorld(visitors, known, truth, dataclasses.replace(dataset, interactions=base), list(dataset.item_ids))


def _ndcg(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    if not relevant:
        return math.nan
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = sum(g for g, i in zip(gains, ranked[:k]) if i in relevant)
    return float(dcg / gains[: min(len(relevant), k)].sum())


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Mean of a - b over users present in both, with a percentile bootstrap 95% interval (users resampled)."""
    ok = ~(np.isnan(a) | np.isnan(b))
    d = (a - b)[ok]
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n_users": int(len(d)),
            "excludes_zero": bool(lo > 0 or hi < 0)}


class _Arm:
    def __init__(self, name: str, learns: bool, model, visit=None) -> None:
        self.name, self.learns, self.model = name, learns, model
        self.visit = visit  # recommenders.visit.VisitLearning: what the visit's skips do; None: they are not used
        self.liked: dict[str, list[str]] = {}
        self.disliked: dict[str, list[str]] = {}
        self.shown: dict[str, set[str]] = {}
        self.version = 1


class _Draws:
    """The random draws every arm shares: one examination draw per visitor, round and position; one like and one
    dislike draw per visitor and item (so the same item at the same position gets the same answer in every arm)."""

    def __init__(self, world: LoopWorld, config: LoopConfig) -> None:
        rng = np.random.default_rng(config.seed)
        n_users, n_items = len(world.visitors), len(world.item_ids)
        self.col = {i: n for n, i in enumerate(world.item_ids)}
        self.exam = rng.random((n_users, config.rounds, config.slate))
        self.like = rng.random((n_users, n_items))
        self.dislike = rng.random((n_users, n_items))
        self.theta = config.theta


def _play_round(arm: _Arm, r: int, world: LoopWorld, draws: _Draws, config: LoopConfig, out: dict[str, np.ndarray],
                ids: random.Random) -> list[dict]:
    """Round `r` of `arm` for every visitor: rank, show the slate, draw the responses; the arm's state and `out`
    (likes, ndcg, ndcg_loved per round and visitor) are updated in place. Returns the round's feedback events."""
    K, n_items = config.slate, len(world.item_ids)
    events = []
    for n, u in enumerate(world.visitors):
        liked = arm.liked.setdefault(u, [])
        disliked = arm.disliked.setdefault(u, [])
        shown = arm.shown.setdefault(u, set())
        history = world.known[u] + (liked if arm.learns else [])
        revealed = set(liked) | set(disliked)
        ranking, _ = arm.model.recommend_with_feedback(
            None, liked=history, disliked=disliked if arm.learns else [], k=n_items,
            exclude=[] if arm.learns else liked + disliked,
            skipped=sorted(shown - revealed) if arm.visit is not None else (), visit=arm.visit)
        truth = world.truth[u]
        out["ndcg"][r, n] = _ndcg(ranking, set(truth) - revealed)
        out["ndcg_loved"][r, n] = _ndcg(ranking, {i for i, x in truth.items() if x >= 4} - revealed)
        slate = [i for i in ranking if i not in shown][:K]
        shown.update(slate)
        for k, item in enumerate(slate):
            if draws.exam[n, r, k] >= draws.theta[k]:
                continue  # not examined
            rating = truth.get(item)
            loved = rating is not None and rating >= 4
            at = T0 + dt.timedelta(hours=r, seconds=n * 60 + k)
            if draws.like[n, draws.col[item]] < (config.p_like if loved else config.p_noise):
                liked.append(item)
                out["likes"][r, n] += 1
                events.append({"event_id": seeded_uuid(ids), "user_id": u, "item_id": item, "kind": "like", "at": at})
            elif rating is not None and rating <= 2 and draws.dislike[n, draws.col[item]] < config.p_dislike:
                disliked.append(item)
                events.append({"event_id": seeded_uuid(ids), "user_id": u, "item_id": item, "kind": "dislike",
                               "at": at})
    return events


def _per_user(config: LoopConfig, n_users: int) -> dict[str, np.ndarray]:
    return {"likes": np.zeros((config.rounds, n_users)), "ndcg": np.full((config.rounds, n_users), np.nan),
            "ndcg_loved": np.full((config.rounds, n_users), np.nan)}


def visit_grid(dataset, config: LoopConfig, grid: Sequence[Any], features: dict[str, np.ndarray] | None = None,
               ) -> dict[str, Any]:
    """Cumulative likes per visitor of the static and fold-in arms and of the visit arm under each of `grid`
    (`recommenders.visit.VisitLearning` settings), over `config.rounds`, under `config.seed`'s world and draws:
    the same play as `run_loop`'s arms (one model fit, no store, no retraining). Used to choose the visit's
    defaults on seeds that are never reported (`bench/bench_visit_grid.py`)."""
    from app.learning import retrain as learning

    world = make_world(dataset, config)
    model = learning.fit_on(config.model, world.base.interactions, world.item_ids, features=features)
    draws = _Draws(world, config)
    n_users = len(world.visitors)

    def play(arm: _Arm) -> float:
        out = _per_user(config, n_users)
        for r in range(config.rounds):
            _play_round(arm, r, world, draws, config, out, random.Random(0))
        return float(out["likes"].sum(0).mean())

    return {"static": play(_Arm("static", False, model)), "fold-in": play(_Arm("fold-in", True, model)),
            "visit": [play(_Arm("visit", True, model, visit=v)) for v in grid]}


def run_loop(dataset, config: LoopConfig, workdir: Path, log: Callable[[str], Any] = lambda m: None,
             features: dict[str, np.ndarray] | None = None) -> dict:
    """Run the simulation; returns the JSON-ready report (see the module docstring). `features`: the item
    features (modality -> (n_items, d), aligned with the dataset's items) of a model that needs them."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.learning import retrain as learning
    from recommenders.splits import random_split
    from recommenders.visit import DEFAULT_VISIT

    t_start = time.perf_counter()
    world = make_world(dataset, config)
    K, theta = config.slate, config.theta
    log(f"sim_loop: {len(world.visitors)} visitors with {config.known} known ratings, "
        f"{sum(map(len, world.truth.values())):,} truth ratings; base {len(world.base.interactions):,} interactions")
    t0 = time.perf_counter()
    v1 = learning.fit_on(config.model, world.base.interactions, world.item_ids, features=features)
    fit_s = time.perf_counter() - t0
    arms = {"static": _Arm("static", False, v1), "fold-in": _Arm("fold-in", True, v1),
            "visit": _Arm("visit", True, v1, visit=DEFAULT_VISIT)}
    if config.retrain:
        arms["retrain"] = _Arm("retrain", True, v1, visit=DEFAULT_VISIT)
    ids = random.Random(config.seed)
    # the store behind the retrain arm: the same registry and gate as `python -m app.train`
    Session = engine = None
    if config.retrain:
        url = f"sqlite:///{workdir / 'loop.db'}"
        upgrade(url)
        engine = make_engine(url)
        Session = make_session_factory(engine)
        with Session() as s, s.begin():
            store.sync_items(s, dataset.items[["item_id", "title", "year", "genres"]])
            for u in world.visitors:
                store.ensure_user(s, u, kind="dataset")
        split = random_split(world.base.interactions, seed=2020)
        learning.bootstrap(Session, world.base, config.model, workdir / "artifacts", features=features, model=v1,
                           split=split)
    per_user = {a: _per_user(config, len(world.visitors)) for a in arms}
    rounds_out: dict[str, list[dict]] = {a: [] for a in arms}
    retrain_log = []
    draws = _Draws(world, config)
    for r in range(config.rounds):
        for arm in arms.values():
            events = _play_round(arm, r, world, draws, config, per_user[arm.name], ids)
            promoted = None
            if arm.name == "retrain":
                with Session() as s, s.begin():
                    store.record_feedback_batch(s, events)
                result = learning.retrain(Session, world.base, config.model, workdir / "artifacts",
                                          features=features, config=learning.GateConfig(tolerance=config.tolerance),
                                          split=split)
                promoted = result.promoted
                if promoted:
                    arm.model, arm.version = result.model, result.version
                retrain_log.append({"round": r + 1, "version": result.version, "promoted": result.promoted,
                                    "reason": result.reason, "seconds": result.seconds, "watermark": result.watermark})
                log(f"sim_loop: round {r + 1} retrain: v{result.version} "
                    f"{'promoted' if promoted else 'rejected'} in {result.seconds['total']:.1f} s: {result.reason}")
            likes = per_user[arm.name]["likes"][r] / K
            lr, lr_lo, lr_hi = _interval(likes)
            nd, nd_lo, nd_hi = _interval(per_user[arm.name]["ndcg"][r])
            ndl = _interval(per_user[arm.name]["ndcg_loved"][r])
            rounds_out[arm.name].append({
                "round": r + 1, "like_rate": lr, "like_rate_ci": [lr_lo, lr_hi], "ndcg@10": nd,
                "ndcg@10_ci": [nd_lo, nd_hi], "ndcg@10_loved": ndl[0], "ndcg@10_loved_ci": [ndl[1], ndl[2]],
                "cumulative_likes": float(per_user[arm.name]["likes"][: r + 1].sum(0).mean()),
                "promoted": promoted, "served_version": arm.version if arm.name == "retrain" else 1,
            })
        log(f"sim_loop: round {r + 1}: " + ", ".join(
            f"{a} like {rounds_out[a][-1]['like_rate']:.3f} ndcg {rounds_out[a][-1]['ndcg@10']:.3f}" for a in arms))
    last = config.rounds - 1
    comparisons = {}
    pairs = [(t, CONTROL) for t in ARMS[1:] if t in arms] + [(a, b) for a, b in (
        ("visit", "fold-in"), ("retrain", "visit")) if a in arms]
    for treat, ctrl in pairs:
        a, b = per_user[treat], per_user[ctrl]
        comparisons[f"{treat} - {ctrl}"] = {
            "like_rate@final": paired_bootstrap(a["likes"][last] / K, b["likes"][last] / K, config.n_boot, config.seed),
            "ndcg@10@final": paired_bootstrap(a["ndcg"][last], b["ndcg"][last], config.n_boot, config.seed),
            "ndcg@10_loved@final": paired_bootstrap(a["ndcg_loved"][last], b["ndcg_loved"][last], config.n_boot,
                                                    config.seed),
            "cumulative_likes": paired_bootstrap(a["likes"].sum(0), b["likes"].sum(0), config.n_boot, config.seed),
        }
    report = {
        "config": {**dataclasses.asdict(config), "theta": [float(t) for t in theta]},
        "arms": {a: {"rounds": rounds_out[a]} for a in arms},
        "treatment": TREATMENT if TREATMENT in arms else "visit",
        "rounds": rounds_out.get(TREATMENT, rounds_out["visit"]),
        "control": {"rounds": rounds_out[CONTROL]},
        "comparisons": comparisons,
        "retrain": retrain_log,
        "seconds": {"fit_v1": fit_s},
    }
    if config.ips:
        t0 = time.perf_counter()
        report["ips"] = ips_check(world, v1, config)
        report["seconds"]["ips"] = time.perf_counter() - t0
    if engine is not None:
        engine.dispose()
    report["seconds"]["total"] = time.perf_counter() - t_start
    return report


def ips_check(world: LoopWorld, logger, config: LoopConfig) -> dict:
    """Log exploring slates of `logger`, estimate examination and the like rate of second models by IPS/SNIPS."""
    from recommenders.ips import estimate_examination, explore_propensities, ips_like_rate

    K, M, eps, theta = config.slate, config.ips_top, config.ips_epsilon, config.theta
    rng = np.random.default_rng(config.seed + 1)

    def q(u: str, items: Sequence[str]) -> np.ndarray:
        truth = world.truth[u]
        return np.array([config.p_like if truth.get(i, 0) >= 4 else config.p_noise for i in items])

    logged, props, explored = [], [], []
    rankings = {u: logger.recommend_with_feedback(None, liked=world.known[u], k=M)[0] for u in world.visitors}
    slate_id = 0
    contexts = []  # slate id -> visitor
    for rep in range(config.ips_replicates):
        for u in world.visitors:
            top = rankings[u]
            explore = rng.random() < eps
            slate = [top[j] for j in rng.permutation(M)[:K]] if explore else top[:K]
            liked = rng.random(K) < theta * q(u, slate)
            logged += [(slate_id, i, k, int(y)) for k, (i, y) in enumerate(zip(slate, liked))]
            p = explore_propensities(np.arange(M), K, eps, M)
            props += [(slate_id, top[j], k, p[j, k]) for j in range(M) for k in range(K)]
            if explore:
                explored += [(k, int(y)) for k, y in enumerate(liked)]
            contexts.append(u)
            slate_id += 1
    logged_df = pd.DataFrame(logged, columns=["slate", "item_id", "position", "liked"])
    props_df = pd.DataFrame(props, columns=["slate", "item_id", "position", "prob"])
    explored_arr = np.array(explored)
    exam = estimate_examination(explored_arr[:, 0], explored_arr[:, 1], K)
    out = {"logger": config.model, "epsilon": eps, "top": M, "n_slates": slate_id,
           "examination": {**exam.as_dict(), "true_eta": config.eta},
           "logged_like_rate": float(logged_df["liked"].mean()), "candidates": {}}
    from app.learning.retrain import fit_on

    for name in config.ips_candidates + (config.model,):
        model = logger if name == config.model else fit_on(name, world.base.interactions, world.item_ids)
        slates = {u: model.recommend_with_feedback(None, liked=world.known[u], k=K)[0] for u in world.visitors}
        cand_df = pd.DataFrame([(s, i, k) for s, u in enumerate(contexts) for k, i in enumerate(slates[u])],
                               columns=["slate", "item_id", "position"])
        truth = float(np.mean([(theta * q(u, slates[u])).sum() / K for u in world.visitors]))
        est = ips_like_rate(logged_df, props_df, cand_df, exam.theta, n_boot=500, seed=config.seed)
        out["candidates"][name if name != config.model else f"{name} (the logger itself)"] = {
            **est.as_dict(), "truth": truth,
            "snips_rel_error": (est.snips - truth) / truth if truth else math.nan,
            "ips_rel_error": (est.ips - truth) / truth if truth else math.nan,
            "truth_in_snips_ci": bool(est.snips_ci[0] <= truth <= est.snips_ci[1]),
        }
    return out
