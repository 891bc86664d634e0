"""Simulated traffic with a known truth, written through the same store API as the app.

    python -m app.simulate --users 50 --days 7                 # into DATABASE_URL (default: .vitrine/vitrine.db)
    python -m app.simulate --users 200 --days 14 --models ease,pop,itemknn --interleave 0.3 --seed 1
    python -m app.simulate --rounds 5 --users 200 --retrain --json loop.json  # the learning loop (app/simulate/loop.py)

Visitors. ml-100k's ratings are split at random 8:1:1 per user (`recommenders.splits.random_split`); the
models are trained on the 80% and the visitors' taste is the held-out 20%: a visitor clicks a shown item
they truly rated (more often when they rated it 4 or 5) and likes it when they rated it 4 or 5; anything
else gets a click only by chance (`noise_click`). Each visitor is assigned one model (a stable A/B split by
user) and, in a share of sessions, sees a team-draft interleaved slate of two models (`app.serving.interleaving`).
So the model that predicts held-out ratings better must show the higher like rate and win the interleaving.

Assets and annotators. For sampled (visitor, item) pairs, captions are made by simulated generators of known
quality (named `sim/...`, their text says so; `fallback` is the template baseline), each personalized (the
visitor's real `generation` prompt) and generic. Pairs go to the labeling queue (`queue.next_pair`) and
simulated annotators label them: the truly better side (Bradley-Terry truth from the generators' quality and
a personalization bonus) with probability `accuracy`, the other one otherwise, and "A" regardless with
probability `bias` (position bias). So the more accurate annotator must show the higher agreement.

Offline evaluation runs (warm random split and item cold-start split) are recorded too, unless `--no-eval`.
Everything is seeded: the same arguments give the same database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import math
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

# Simulated caption generators: name -> (quality on the Bradley-Terry log-odds scale, median latency ms).
GENERATORS: dict[str, tuple[float, float]] = {
    "sim/caption-large": (1.0, 900.0),
    "sim/caption-small": (0.3, 250.0),
    "fallback": (0.0, 4.0),
}
PERSONALIZATION_BONUS = 0.8  # log-odds a personalized asset gains over a generic one of the same generator


@dataclass(frozen=True)
class AnnotatorSpec:
    name: str
    accuracy: float  # probability of choosing the truly better side when not biased
    bias: float = 0.0  # probability of answering "A" whatever is shown

    @classmethod
    def parse(cls, text: str) -> "AnnotatorSpec":
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"--annotators entries must be name:accuracy[:bias], got {text!r}")
        try:
            accuracy = float(parts[1])
            bias = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise ValueError(f"--annotators entries must be name:accuracy[:bias] with numbers, got {text!r}") from None
        if not 0.0 <= accuracy <= 1.0 or not 0.0 <= bias <= 1.0:
            raise ValueError(f"accuracy and bias must be in [0, 1], got {text!r}")
        return cls(parts[0], accuracy, bias)


@dataclass
class SimConfig:
    users: int = 50
    days: int = 7
    models: tuple[str, ...] = ("ease", "pop")  # the first is expected to win: it predicts held-out ratings best
    slate: int = 10  # items per slate
    sessions_per_day: float = 1.0  # mean slates a visitor sees per active day (Poisson)
    interleave: float = 0.3  # share of sessions that show a team-draft interleaved slate of two models
    noise_click: float = 0.02  # click probability for an item the visitor never rated
    click_rated: float = 0.5  # click probability for a held-out item rated below 4
    click_loved: float = 0.8  # click probability for a held-out item rated 4 or 5 ...
    like_loved: float = 0.8  # ... and the probability of liking it after the click
    asset_items: int = 40  # (visitor, item) pairs that get generated captions to compare
    annotators: tuple[AnnotatorSpec, ...] = (
        AnnotatorSpec("ann-careful", 0.95), AnnotatorSpec("ann-average", 0.8), AnnotatorSpec("ann-sloppy", 0.6, 0.4),
    )
    overlap: int = 3  # annotators per pair (the store's queue enforces it)
    evaluate: bool = True
    seed: int = 0
    now: dt.datetime | None = None  # "today" of the simulation (naive UTC); default: now

    def __post_init__(self) -> None:
        checks = [
            ("users", self.users, 1, 100_000), ("days", self.days, 1, 3650), ("slate", self.slate, 2, 100),
            ("asset_items", self.asset_items, 0, 100_000), ("overlap", self.overlap, 1, 100),
        ]
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
        for name in ("interleave", "noise_click", "click_rated", "click_loved", "like_loved"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not 0 < self.sessions_per_day <= 50:
            raise ValueError(f"sessions_per_day must be in (0, 50], got {self.sessions_per_day!r}")
        if len(self.models) < 1 or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct model names, got {self.models!r}")
        if self.interleave > 0 and len(self.models) < 2:
            raise ValueError("interleave > 0 needs at least two models (--models a,b)")
        if not self.annotators:
            raise ValueError("annotators must name at least one simulated annotator")


@dataclass
class SimReport:
    users: int = 0
    impressions: int = 0
    interleaved: int = 0
    feedback: int = 0
    assets: int = 0
    pairs: int = 0
    labels: int = 0
    eval_runs: int = 0
    seconds: float = 0.0
    truth: dict = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stable_index(text: str, n: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % n


def _times(rng: random.Random, day: dt.datetime, count: int, latest: dt.datetime) -> list[dt.datetime]:
    """`count` sorted random times within `day`, none later than `latest`."""
    span = min(86_400.0, max(1.0, (latest - day).total_seconds()))
    return sorted(day + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(count))


def simulate(session_factory, dataset, config: SimConfig, log=print) -> SimReport:
    """Run the simulation into the store behind `session_factory` (a migrated database)."""
    from annotation import store
    from app.serving.interleaving import team_draft
    from recommenders.evaluation import evaluate_model
    from recommenders.models import create_model
    from recommenders.splits import cold_item_split, random_split

    t0 = time.perf_counter()
    rng = random.Random(config.seed)
    nprng = np.random.default_rng(config.seed)
    report = SimReport()
    now = config.now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    first_day = dt.datetime.combine(now.date(), dt.time()) - dt.timedelta(days=config.days - 1)

    # 1. Truth: the held-out ratings of a random 8:1:1 split; models are trained on the rest.
    interactions = dataset.interactions[["user_id", "item_id", "rating", "timestamp"]]
    split = random_split(interactions, seed=config.seed)
    held = pd.concat([split.valid, split.test])
    item_ids = dataset.items["item_id"].astype(str).tolist()
    models = {}
    for name in config.models:
        models[name] = create_model(name).fit(split.train[["user_id", "item_id"]], item_ids)
        log(f"simulate: trained {name} on {len(split.train):,} interactions")
    eligible = sorted(set(held["user_id"]) & set(models[config.models[0]].user_ids), key=int)
    visitors = rng.sample(eligible, min(config.users, len(eligible)))
    truth = {(u, i): r for u, i, r in held[held["user_id"].isin(visitors)][["user_id", "item_id", "rating"]]
             .itertuples(index=False)}
    pool = max(config.slate * 4, int(config.slate * config.days * config.sessions_per_day * 3))
    ranked = {}
    for name, model in models.items():
        lists, _ = model.recommend_batch(visitors, k=min(pool, len(item_ids)), exclude_seen=True)
        ranked[name] = dict(zip(visitors, lists))

    Session = session_factory
    with Session() as s, s.begin():
        store.sync_items(s, dataset.items[["item_id", "title", "year", "genres"]])
        for user in visitors:
            store.ensure_user(s, user, kind="dataset")
    report.users = len(visitors)

    # 2. Visitors: one transaction per visitor-day, like a short browsing session.
    shown: dict[str, set[str]] = {u: set() for u in visitors}
    for day_index in range(config.days):
        day = first_day + dt.timedelta(days=day_index)
        for user in visitors:
            n_sessions = int(nprng.poisson(config.sessions_per_day))
            if n_sessions == 0:
                continue
            events = []
            with Session() as s, s.begin():
                for at in _times(rng, day, n_sessions, now):
                    def fresh(name: str) -> list[str]:
                        return [i for i in ranked[name][user] if i not in shown[user]]

                    if len(config.models) >= 2 and rng.random() < config.interleave:
                        a, b = rng.sample(list(config.models), 2)
                        slate = team_draft(fresh(a), fresh(b), config.slate, names=(a, b), rng=rng)
                        items, contributors, model = slate.item_ids, slate.contributors, (a, b)
                        report.interleaved += 1
                    else:
                        name = config.models[_stable_index(f"{config.seed}:{user}", len(config.models))]
                        items, contributors, model = fresh(name)[: config.slate], None, name
                    if not items:
                        continue
                    imp = store.record_impression(s, _uuid(rng), user, model, items, contributors=contributors,
                                                  context={"tab": "simulated"}, at=at)
                    report.impressions += 1
                    shown[user].update(items)
                    for position, item in enumerate(items):
                        rating = truth.get((user, item))
                        p_click = (config.noise_click if rating is None else
                                   config.click_loved if rating >= 4 else config.click_rated)
                        if rng.random() >= p_click:
                            continue
                        click_at = at + dt.timedelta(seconds=5 + 3 * position + rng.random())
                        events.append({"event_id": _uuid(rng), "user_id": user, "item_id": item, "kind": "click",
                                       "impression_id": imp.id, "at": click_at})
                        if rating is not None and rating >= 4 and rng.random() < config.like_loved:
                            events.append({"event_id": _uuid(rng), "user_id": user, "item_id": item,
                                           "kind": "like", "impression_id": imp.id,
                                           "at": click_at + dt.timedelta(seconds=2)})
                report.feedback += store.record_feedback_batch(s, events)
    log(f"simulate: {report.impressions:,} slates ({report.interleaved:,} interleaved), "
        f"{report.feedback:,} feedback events")

    # 3. Generated captions of known quality, personalized and generic, and pairs to label.
    if config.asset_items > 0:
        _simulate_assets(Session, dataset, split.train, visitors, config, rng, nprng, report, first_day, now)

    # 4. Offline evaluation: warm (random split) and item cold-start.
    if config.evaluate:
        cold = cold_item_split(interactions, seed=config.seed)
        for split_obj in (split, cold):
            for name in config.models:
                model = models[name] if split_obj is split else create_model(name).fit(
                    split_obj.train[["user_id", "item_id"]], item_ids)
                metrics = evaluate_model(model, split_obj, ks=(10, 20), parts=("test",))["test"]
                metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)
                           and k != "eval_seconds"}
                with Session() as s, s.begin():
                    store.record_eval_run(s, name, dataset.name, split_obj.name, metrics,
                                          config={"seed": config.seed, "simulated": True}, at=now)
                report.eval_runs += 1
        log(f"simulate: {report.eval_runs} evaluation runs recorded")

    report.seconds = time.perf_counter() - t0
    report.truth = {
        "best_model": config.models[0],
        "best_generator": max(GENERATORS, key=lambda g: GENERATORS[g][0]),
        "best_annotator": max(config.annotators, key=lambda a: (a.accuracy, -a.bias)).name,
        "worst_annotator": min(config.annotators, key=lambda a: (a.accuracy, -a.bias)).name,
    }
    return report


def _simulate_assets(Session, dataset, train: pd.DataFrame, visitors: Sequence[str], config: SimConfig,
                     rng: random.Random, nprng: np.random.Generator, report: SimReport, first_day: dt.datetime,
                     now: dt.datetime) -> None:
    from annotation import queue, store
    from generation.domain import Domain, with_article
    from generation.profile import build_profile
    from generation.prompts import ItemInfo, build_prompt

    domain = Domain.from_spec(getattr(dataset, "domain", None))

    items = dataset.items.set_index("item_id")
    liked = train[train["rating"] >= 4]
    quality: dict[int, float] = {}
    pair_ids: list[int] = []
    with Session() as s, s.begin():
        for n in range(config.asset_items):
            user = visitors[n % len(visitors)]
            item_id = str(rng.choice(items.index.tolist()))
            row = items.loc[item_id]
            year = None if pd.isna(row["year"]) else int(row["year"])
            item = ItemInfo(item_id=item_id, title=str(row["title"]), year=year, genres=list(row["genres"]),
                            text=str(row["text"]))
            history = [{"item_id": i, "title": str(items.loc[i, "title"]), "text": str(items.loc[i, "text"]),
                        "genres": list(items.loc[i, "genres"]), "year": None, "rating": float(r), "timestamp": int(t)}
                       for i, r, t in liked[liked["user_id"] == user][["item_id", "rating", "timestamp"]]
                       .head(30).itertuples(index=False)]
            profile = build_profile(user, history, domain=domain)
            ids = {}
            for generator, (q, latency) in GENERATORS.items():
                for personalized in (True, False):
                    prompt = build_prompt(item, profile if personalized else None, alpha=0.5 if personalized else 0.0,
                                          domain=domain)
                    text = (f"[simulated {generator}] {item.title}: " + ", ".join(prompt.keywords[:4])
                            if generator != "fallback" else f"{item.title} — {', '.join(item.genres) or with_article(domain.noun)}.")
                    asset = store.record_asset(s, {
                        "event_id": _uuid(rng), "kind": "caption", "item_id": item_id,
                        "user_id": user if personalized else None, "generator": generator,
                        "fallback": generator == "fallback", "prompt": prompt.text,
                        "negative_prompt": prompt.negative, "seed": n, "path": None, "text": text,
                        "params": {"alpha": prompt.alpha, "simulated": True},
                        "content_hash": hashlib.sha256(f"{generator}|{prompt.text}|{n}".encode()).hexdigest(),
                        "latency_ms": float(latency * math.exp(nprng.normal(0, 0.3))),
                        "personalized": personalized, "cache_hit": False,
                    })
                    ids[(generator, personalized)] = asset.id
                    quality[asset.id] = q + (PERSONALIZATION_BONUS if personalized else 0.0)
                    report.assets += 1
            # personalized vs generic for each generator, and each generator against the others (personalized)
            sides = [((g, True), (g, False)) for g in GENERATORS]
            names = list(GENERATORS)
            sides += [((a, True), (b, True)) for i, a in enumerate(names) for b in names[i + 1:]]
            for left, right in sides:
                a, b = (ids[left], ids[right]) if rng.random() < 0.5 else (ids[right], ids[left])
                pair_ids.append(queue.create_pair(s, a, b, target_user_id=user).id)
    report.pairs = len(pair_ids)

    # Gold: the truly better side of each pair, drawn once from the Bradley-Terry truth.
    gold: dict[int, str] = {}
    with Session() as s, s.begin():
        for pid in pair_ids:
            pair = queue.get_pair(s, pid)
            p_a = 1.0 / (1.0 + math.exp(quality[pair.asset_b_id] - quality[pair.asset_a_id]))
            gold[pid] = "A" if rng.random() < p_a else "B"
        annotators = {spec.name: store.get_or_create_annotator(s, spec.name).id for spec in config.annotators}
    span = max(1.0, (now - first_day).total_seconds())
    active = list(config.annotators)
    step = 0
    while active:
        for spec in list(active):
            with Session() as s, s.begin():
                at = first_day + dt.timedelta(seconds=span * min(1.0, step / max(1, len(pair_ids) * config.overlap)))
                pair = queue.next_pair(s, annotators[spec.name], overlap=config.overlap, kind="caption", now=at)
                if pair is None:
                    active.remove(spec)
                    continue
                if rng.random() < spec.bias:
                    choice = "A"
                elif rng.random() < spec.accuracy:
                    choice = gold[pair.id]
                else:
                    choice = "B" if gold[pair.id] == "A" else "A"
                spent = int(1000 * (2 + 6 * spec.accuracy) * math.exp(nprng.normal(0, 0.4)))
                queue.record_preference(s, _uuid(rng), pair.id, annotators[spec.name], choice, time_spent_ms=spent,
                                        at=at + dt.timedelta(seconds=spent / 1000))
                report.labels += 1
            step += 1


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, SimConfig]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated visitors (ml-100k users)")
    parser.add_argument("--days", type=int, default=7, help="days of traffic, ending today")
    parser.add_argument("--models", default="ease,pop", help="comma-separated recommenders; the first should win")
    parser.add_argument("--slate", type=int, default=10, help="items per slate")
    parser.add_argument("--sessions-per-day", type=float, default=1.0, help="mean slates per visitor per day")
    parser.add_argument("--interleave", type=float, default=0.3, help="share of interleaved sessions")
    parser.add_argument("--asset-items", type=int, default=40, help="(visitor, item) pairs with generated captions")
    parser.add_argument("--annotators", default=None,
                        help="comma-separated name:accuracy[:bias], default "
                             "ann-careful:0.95,ann-average:0.8,ann-sloppy:0.6:0.4")
    parser.add_argument("--overlap", type=int, default=3, help="annotators per pair")
    parser.add_argument("--no-eval", action="store_true", help="skip the offline evaluation runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    args = parser.parse_args(argv)
    try:
        kwargs = {}
        if args.annotators:
            kwargs["annotators"] = tuple(AnnotatorSpec.parse(t.strip()) for t in args.annotators.split(",") if t.strip())
        config = SimConfig(users=args.users, days=args.days, models=tuple(m.strip() for m in args.models.split(",")
                                                                           if m.strip()),
                           slate=args.slate, sessions_per_day=args.sessions_per_day, interleave=args.interleave,
                           asset_items=args.asset_items, overlap=args.overlap, evaluate=not args.no_eval,
                           seed=args.seed, **kwargs)
    except ValueError as exc:
        parser.error(str(exc))
    return args, config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--rounds" or a.startswith("--rounds=") for a in argv):  # the learning-loop simulation
        from app.simulate.loop import main as loop_main

        return loop_main(argv)
    if "--reward" in argv:  # the generation loop's proof: app/simulate/reward.py
        from app.simulate.reward import main as reward_main

        return reward_main([a for a in argv if a != "--reward"])
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.settings import load_settings
    from recommenders.data import load_dataset

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a pinned requirement
        pass
    args, config = parse_args(argv)
    settings = load_settings()
    url = args.database_url or settings.database_url
    upgrade(url)
    dataset = load_dataset(settings.dataset, settings.data_dir)
    report = simulate(make_session_factory(make_engine(url)), dataset, config,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"simulate: done in {report.seconds:.1f} s into {url}: {report.users} users, {report.impressions:,} slates "
          f"({report.interleaved:,} interleaved), {report.feedback:,} feedback events, {report.assets:,} assets, "
          f"{report.pairs:,} pairs, {report.labels:,} labels, {report.eval_runs} evaluation runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
