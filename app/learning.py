"""Gated retraining: logs -> candidate -> evaluation next to the served version -> promote or reject -> registry.

    result = retrain(Session, dataset, "ease", artifacts_dir)          # python -m app.train --model ease
    rollback(Session, "ease")                                          # python -m app.train --model ease --rollback
    version, model = load_promoted(Session, "ease", artifacts_dir)      # what every replica serves

The steps of `retrain`, top to bottom:
1. Read every logged feedback event (`annotation.registry.training_events`); the data watermark is the
   largest event id read. Nothing served yet: version 1 is trained on the dataset alone and promoted
   ("initial version"), so there is always a served version to compare with.
2. Events -> training signal (`recommenders.signals.to_signal`: weights, explicit negatives, later events
   override earlier ones).
3. The recent holdout: per user, the last `holdout_fraction` (10%, at least one) of their liked items
   (signal label positive from a like or a rating), by time. The candidate never trains on them.
4. The candidate: the model trained (`recommenders.training.train_model`) on the dataset + the rest of the
   signal.
5. Evaluation, both models, two ways, each recorded in eval_runs with its version:
   - the fixed offline split: RecBole's random 8:1:1 of the dataset (seed `split_seed`); the model's recipe
     is fitted on the split's train part + the logged signal (minus the holdout, minus pairs in the split's
     valid/test parts) and ranked with RecBole's full-ranking protocol; the gate reads the `valid` part
     (test is recorded, never used to decide). The served version's figure is the one recorded when it was
     the candidate (same split and seed), so each gate costs one extra fit, not two;
   - the recent holdout: each held-out user's history (dataset positives + logged positives that are not
     held out, dislikes as negatives) is folded in (`recommend_with_feedback`) and the held-out items are
     ranked against everything they have not seen: NDCG@10 and Recall@10. The served artifact is scored
     the same way. It may have trained on some held-out likes (those logged before its watermark), which
     only makes the gate stricter for the candidate.
6. The gate: promote only when the candidate is not worse than the served version on both, by more than
   `tolerance` (absolute, on `metric`, default NDCG@10, tolerance 0). With no held-out feedback yet (no
   likes logged), the holdout comparison is skipped and the reason says so.
7. Registry: the candidate is saved under `artifacts_dir/<name>/v<version>` (a key a blob store can take
   over) and registered with its watermark, metrics (its own and the served version's) and the decision
   with its reason - promoted or rejected, every version is kept. Promotion marks it served; replicas see
   it through `promoted_version` / `ServedModelWatcher` and swap models without a restart.

`RetrainSchedule` runs `retrain` after every N new events or T minutes (both off by default).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

HOLDOUT_SPLIT = "recent-holdout"
LIKED_KINDS = ("like", "rating")  # a "liked item" of the holdout: a positive signal from one of these


@dataclass(frozen=True)
class GateConfig:
    """How a candidate is judged; the defaults carry the why."""

    tolerance: float = 0.0  # a candidate may be this much worse on `metric` (absolute) and still pass; 0 = not worse
    metric: str = "ndcg@10"  # the ranking metric both comparisons use (RecBole's definition)
    holdout_fraction: float = 0.1  # the last 10% of each user's liked items (at least one) are never trained on
    split_seed: int = 2020  # the fixed offline split: RecBole's random 8:1:1 with this seed
    offline_part: str = "valid"  # the gate reads valid; test is recorded and never decides
    k: int = 10  # cut-off of the holdout metrics

    def __post_init__(self) -> None:
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance: expected a finite number >= 0, got {self.tolerance!r}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction: expected a fraction in (0, 1), got {self.holdout_fraction!r}")
        if self.offline_part not in ("valid", "test"):
            raise ValueError(f"offline_part: expected 'valid' or 'test', got {self.offline_part!r}")
        if self.metric not in (f"{m}@{self.k}" for m in ("ndcg", "recall", "hit", "mrr", "precision")):
            raise ValueError(f"metric: expected one of ndcg/recall/hit/mrr/precision@{self.k}, got {self.metric!r}")


@dataclass
class RetrainResult:
    """What one gated retraining did."""

    name: str
    version: int  # the candidate's version number
    version_id: int
    promoted: bool
    reason: str
    watermark: int | None
    metrics: dict[str, Any]  # {"candidate": {"offline": .., "holdout": ..}, "served": {...}, "served_version": n}
    seconds: dict[str, float] = field(default_factory=dict)  # fit, evaluate, total
    model: Any = None  # the candidate recommender (served now if promoted)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("model")
        return out


# ------------------------------------------------------------------------------------------------------------
# pure steps (DataFrames in, numbers out): the simulation calls them without a database
# ------------------------------------------------------------------------------------------------------------
def recent_holdout(signal: pd.DataFrame, fraction: float = 0.1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, holdout): per user, the last ceil(fraction * n) of their n liked items (by timestamp, event id)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: expected a fraction in (0, 1), got {fraction!r}")
    liked = signal[(signal["label"] == "positive") & signal["kind"].isin(LIKED_KINDS)]
    if liked.empty:
        return signal.reset_index(drop=True), signal.iloc[:0].reset_index(drop=True)
    liked = liked.sort_values(["user_id", "timestamp", "event_id"], kind="stable")
    n = liked.groupby("user_id")["item_id"].transform("size").to_numpy()
    from_end = n - 1 - liked.groupby("user_id").cumcount().to_numpy()
    held = liked[from_end < np.ceil(fraction * n)]
    mask = signal.index.isin(held.index)
    return signal[~mask].reset_index(drop=True), signal[mask].reset_index(drop=True)


def _train_frame(base: pd.DataFrame) -> pd.DataFrame:
    weight = base["weight"] if "weight" in base.columns else np.ones(len(base))
    return pd.DataFrame({"user_id": base["user_id"].astype(str).to_numpy(),
                         "item_id": base["item_id"].astype(str).to_numpy(),
                         "weight": np.asarray(weight, dtype=float)})


def fit_on(name: str, base: pd.DataFrame, item_ids: Sequence[str], signal: pd.DataFrame | None = None,
           features: Mapping[str, np.ndarray] | None = None, params: Mapping[str, Any] | None = None,
           valid: pd.DataFrame | None = None):
    """A fresh `name` model fitted on `base` (every row a positive unless it has a weight) + the signal rows.

    `valid` early-stops iterative models (bpr, lightgcn, ...); the closed-form ones ignore it."""
    from recommenders.models import create_model

    frame = _train_frame(base)
    if signal is not None and len(signal):
        frame = pd.concat([frame, _train_frame(signal)], ignore_index=True)
    return create_model(name, **dict(params or {})).fit(frame, list(item_ids), features, valid=valid)


def offline_metrics(name: str, split, item_ids: Sequence[str], signal: pd.DataFrame | None = None,
                    features: Mapping[str, np.ndarray] | None = None, params: Mapping[str, Any] | None = None,
                    ks: tuple[int, ...] = (10, 20)) -> dict[str, dict[str, float]]:
    """{"valid": {...}, "test": {...}} of the recipe (name, params, signal) on the fixed offline split.

    The signal's pairs that are in the split's valid or test parts are left out, so nothing evaluated is
    trained on. Iterative models early-stop on the valid part (the same for candidate and served, so the
    comparison stays fair; the test part is untouched).
    """
    from recommenders.evaluation import evaluate_model
    from recommenders.splits import Split

    extra = None
    if signal is not None and len(signal):
        held = pd.concat([split.valid, split.test])
        keys = set(zip(held["user_id"].astype(str), held["item_id"].astype(str)))
        keep = [(u, i) not in keys for u, i in zip(signal["user_id"].astype(str), signal["item_id"].astype(str))]
        extra = signal[np.asarray(keep, dtype=bool)]
    model = fit_on(name, split.train, item_ids, extra, features, params, valid=split.valid)
    if extra is not None and len(extra):
        # RecBole ranks everything but the user's training items: the logged ones are training items too
        seen = pd.concat([split.train[["user_id", "item_id"]].astype(str),
                          extra[["user_id", "item_id"]].astype(str)], ignore_index=True)
        split = Split(split.name, split.seed, seen, split.valid, split.test, split.cold_items)
    out = evaluate_model(model, split, ks=ks, parts=("valid", "test"))
    return {part: {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            for part, m in out.items()}


@dataclass
class HoldoutCase:
    """One held-out user: what the model is told (liked, disliked, exclude) and what it should rank (targets)."""

    user_id: str
    liked: list[str]
    disliked: list[str]
    exclude: list[str]
    targets: set[str]


def holdout_cases(base: pd.DataFrame, signal: pd.DataFrame, holdout: pd.DataFrame,
                  users: Sequence[str] | None = None) -> list[HoldoutCase]:
    """Per held-out user: history = positives of `base` and of `signal` (the non-held-out feedback; for a pair
    in both, the signal's row decides), dislikes as negatives, every seen item excluded. Users whose history
    has no positive are skipped (nothing to fold in)."""
    if holdout.empty:
        return []
    hold = pd.DataFrame({"user_id": holdout["user_id"].astype(str).to_numpy(dtype=object),
                         "item_id": holdout["item_id"].astype(str).to_numpy(dtype=object)})
    who = set(hold["user_id"]) if users is None else set(hold["user_id"]) & set(map(str, users))
    rows = pd.concat([_train_frame(base), _train_frame(signal)], ignore_index=True)
    rows = pd.DataFrame({"user_id": rows["user_id"].to_numpy(dtype=object), "item_id": rows["item_id"].to_numpy(
        dtype=object), "weight": rows["weight"].to_numpy()})
    rows = rows[rows["user_id"].isin(who)].drop_duplicates(["user_id", "item_id"], keep="last")
    rows = rows[~pd.MultiIndex.from_frame(rows[["user_id", "item_id"]]).isin(
        pd.MultiIndex.from_frame(hold[["user_id", "item_id"]]))]
    targets = hold[hold["user_id"].isin(who)].groupby("user_id")["item_id"].agg(set)
    by_user = {u: g for u, g in rows.groupby("user_id", sort=False)}
    cases = []
    for user in sorted(targets.index):
        g = by_user.get(user)
        if g is None:
            continue
        w = g["weight"].to_numpy()
        items = g["item_id"].to_numpy()
        liked = sorted(items[w > 0])
        if not liked:
            continue
        cases.append(HoldoutCase(user, liked, sorted(items[w < 0]), sorted(items[w == 0]), targets[user]))
    return cases


def holdout_metrics(model, base: pd.DataFrame | None = None, signal: pd.DataFrame | None = None,
                    holdout: pd.DataFrame | None = None, k: int = 10, users: Sequence[str] | None = None,
                    cases: list[HoldoutCase] | None = None) -> dict[str, float]:
    """NDCG@k and Recall@k of the held-out liked items, each user's history folded in (`holdout_cases`).

    Pass `cases` to score several models on the same cases. Returns {"ndcg@k", "recall@k", "n_users"}.
    """
    from recommenders import metrics

    if cases is None:
        cases = holdout_cases(base, signal, holdout, users)
    if not cases:
        return {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan"), "n_users": 0.0}
    hits = np.zeros((len(cases), k), dtype=bool)
    n_pos = np.array([len(c.targets) for c in cases])
    for row, case in enumerate(cases):
        ids, _ = model.recommend_with_feedback(None, liked=case.liked, disliked=case.disliked, k=k,
                                               exclude=case.exclude)
        hits[row, : len(ids)] = [i in case.targets for i in ids]
    return {f"ndcg@{k}": float(metrics.ndcg(hits, n_pos, k).mean()),
            f"recall@{k}": float(metrics.recall(hits, n_pos, k).mean()), "n_users": float(len(cases))}


def gate(candidate: Mapping[str, Mapping[str, float]], served: Mapping[str, Mapping[str, float]],
         config: GateConfig = GateConfig()) -> tuple[bool, str]:
    """(promote, reason): not worse than served by more than `tolerance` on the offline split and the holdout.

    `candidate` / `served`: {"offline": {metric: value}, "holdout": {metric: value}}. A holdout figure that
    is NaN on either side (no held-out feedback) is not compared, and the reason says so.
    """
    m, tol = config.metric, config.tolerance
    parts = []
    ok = True
    for where in ("offline", "holdout"):
        c, s = (math.nan if x is None else float(x) for x in (candidate.get(where, {}).get(m),
                                                                 served.get(where, {}).get(m)))
        if where == "offline" and (math.isnan(c) or math.isnan(s)):
            return False, f"offline {m} missing (candidate {c}, served {s}): cannot judge"
        if math.isnan(c) or math.isnan(s):
            parts.append(f"{where}: not compared (no held-out feedback)")
            continue
        delta = c - s
        passed = delta >= -tol
        ok &= passed
        parts.append(f"{where} {m} {c:.4f} vs served {s:.4f} ({delta:+.4f}{'' if passed else ', worse'})")
    verdict = "not worse on both" if ok else "worse than the served version"
    return ok, f"{verdict} (tolerance {tol:g}): " + "; ".join(parts)


# ------------------------------------------------------------------------------------------------------------
# with the store: registry, artifacts, eval_runs
# ------------------------------------------------------------------------------------------------------------
def artifact_key(name: str, version: int) -> str:
    """Where version `version` of `name` lives under the artifacts directory (a blob-store key later)."""
    return f"{name}/v{version}"


def load_version_model(artifacts_dir: Path, artifact: str):
    from recommenders.models import load_model

    return load_model(Path(artifacts_dir) / artifact)


def load_promoted(Session, name: str, artifacts_dir: Path, kind: str = "recommender") -> tuple[Any, Any]:
    """(version row, loaded model) of the served version of `name`; (None, None) when none is promoted."""
    from annotation import registry

    with Session() as s:
        row = registry.promoted_version(s, name, kind)
        if row is None:
            return None, None
        s.expunge(row)
    return row, load_version_model(artifacts_dir, row.artifact)


def _record_evals(s, version_id: int, dataset_name: str, offline: Mapping[str, Mapping[str, float]] | None,
                  holdout: Mapping[str, float] | None, config: Mapping[str, Any]) -> None:
    from annotation import registry

    for part, values in (offline or {}).items():
        registry.record_version_eval(s, version_id, dataset_name, f"random:{part}", values, config=config)
    if holdout and holdout.get("n_users", 0) > 0:
        registry.record_version_eval(s, version_id, dataset_name, HOLDOUT_SPLIT,
                                     {k: v for k, v in holdout.items() if math.isfinite(v)}, config=config)


def _register(Session, name: str, model, artifacts_dir: Path, *, watermark: int | None, metrics: dict,
              config: dict, decision: str, reason: str, dataset_name: str,
              evals: Sequence[tuple[int | None, Any, Any, dict]] = ()) -> Any:
    """Register, save the artifact, record the evaluations and the decision in one transaction."""
    from annotation import registry

    with Session() as s, s.begin():
        row = registry.register(s, name, "pending", watermark=watermark, metrics=_json_safe(metrics),
                                config=_json_safe(config))
        row.artifact = artifact_key(name, row.version)
        model.save(Path(artifacts_dir) / row.artifact)
        for version_id, offline, holdout, cfg in evals:
            _record_evals(s, row.id if version_id is None else version_id, dataset_name, offline, holdout, cfg)
        registry.decide(s, row.id, decision, reason)
        s.flush()
        s.expunge(row)
    return row


def _json_safe(value: Any) -> Any:
    """NaN and infinities -> None, recursively (JSON has no NaN); numpy numbers -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _signal(events: pd.DataFrame) -> pd.DataFrame:
    from recommenders.signals import to_signal

    return to_signal(events[["user_id", "item_id", "kind", "value", "created_at", "id"]])


def bootstrap(Session, dataset, name: str, artifacts_dir: Path, *, features=None, params=None,
              config: GateConfig = GateConfig(), model=None, split=None) -> Any:
    """Register and promote version 1: `model` (default: `name` fitted on the dataset alone), no logs."""
    from recommenders.splits import random_split

    split = split if split is not None else random_split(dataset.interactions, seed=config.split_seed)
    if model is None:
        from recommenders.training import train_model

        model = train_model(dataset, name, features=features, **dict(params or {}))
    offline = offline_metrics(name, split, dataset.item_ids, None, features, params)
    metrics = {"candidate": {"offline": offline, "holdout": {}}, "split_seed": config.split_seed}
    return _register(Session, name, model, artifacts_dir, watermark=None, metrics=metrics,
                     config={"params": dict(params or {}), "events": 0, "signal_rows": 0},
                     decision="promoted", reason="initial version: trained on the dataset alone, nothing served before",
                     dataset_name=dataset.name, evals=[(None, offline, None, {"role": "candidate"})])


def retrain(Session, dataset, name: str, artifacts_dir: Path, *, features: Mapping[str, np.ndarray] | None = None,
            params: Mapping[str, Any] | None = None, config: GateConfig = GateConfig(),
            corrupt: Callable[[pd.DataFrame], pd.DataFrame] | None = None, split=None,
            log: Callable[[str], Any] = lambda m: None) -> RetrainResult:
    """Build a candidate on the dataset + the logs, evaluate it next to the served version, gate, register.

    `corrupt`: applied to the candidate's training signal (after the holdout is taken out) - a drill that
    checks the gate, e.g. shuffled item ids; never used in production. `split`: the fixed offline split
    (default: RecBole's random 8:1:1 of the dataset with `config.split_seed`).
    """
    from annotation import registry
    from recommenders.splits import random_split
    from recommenders.training import train_model

    t0 = time.perf_counter()
    artifacts_dir = Path(artifacts_dir)
    split = split if split is not None else random_split(dataset.interactions, seed=config.split_seed)
    with Session() as s:
        served = registry.promoted_version(s, name)
        if served is not None:
            s.expunge(served)
    if served is None:
        log(f"retrain {name}: nothing served yet, registering version 1 (dataset alone)")
        bootstrap(Session, dataset, name, artifacts_dir, features=features, params=params, config=config, split=split)
        with Session() as s:
            served = registry.promoted_version(s, name)
            s.expunge(served)
    with Session() as s:
        events = registry.training_events(s)
    watermark = int(events["id"].max()) if len(events) else None
    # 1-3. signal and the recent holdout
    signal = _signal(events)
    rest, holdout = recent_holdout(signal, config.holdout_fraction)
    train_signal = corrupt(rest.copy()) if corrupt is not None else rest
    # 4. the candidate
    t_fit = time.perf_counter()
    from recommenders.signals import training_frame

    candidate = train_model(dataset, name, features=features, extra_interactions=training_frame(train_signal),
                            **dict(params or {}))
    fit_s = time.perf_counter() - t_fit
    # 5. evaluation: offline split (served: as recorded when it was the candidate) and recent holdout
    t_eval = time.perf_counter()
    cand_offline = offline_metrics(name, split, dataset.item_ids, train_signal, features, params)
    served_metrics = (served.metrics or {}).get("candidate", {})
    served_offline = served_metrics.get("offline") if (served.metrics or {}).get("split_seed") == config.split_seed \
        else None
    if not served_offline:
        served_events = events[events["id"] <= served.watermark] if served.watermark is not None else events.iloc[:0]
        served_signal = _signal(served_events)
        served_signal = served_signal[~served_signal.set_index(["user_id", "item_id"]).index.isin(
            holdout.set_index(["user_id", "item_id"]).index)]
        served_offline = offline_metrics(name, split, dataset.item_ids, served_signal, features, params)
    served_model = load_version_model(artifacts_dir, served.artifact)
    cases = holdout_cases(dataset.interactions, rest, holdout)
    cand_holdout = holdout_metrics(candidate, k=config.k, cases=cases)
    served_holdout = holdout_metrics(served_model, k=config.k, cases=cases)
    eval_s = time.perf_counter() - t_eval
    # 6. the gate
    part = config.offline_part
    promote, reason = gate({"offline": cand_offline[part], "holdout": cand_holdout},
                           {"offline": served_offline[part], "holdout": served_holdout}, config)
    # 7. the registry
    metrics = {
        "candidate": {"offline": cand_offline, "holdout": cand_holdout},
        "served": {"offline": served_offline, "holdout": served_holdout},
        "served_version": served.version, "split_seed": config.split_seed, "gate_part": part,
        "metric": config.metric, "tolerance": config.tolerance,
    }
    seconds = {"fit": fit_s, "evaluate": eval_s}
    run_config = {"params": dict(params or {}), "events": int(len(events)), "signal_rows": int(len(rest)),
                  "holdout_rows": int(len(holdout)), "corrupted": corrupt is not None}
    row = _register(
        Session, name, candidate, artifacts_dir, watermark=watermark, metrics=metrics,
        config={**run_config, "seconds": seconds}, decision="promoted" if promote else "rejected", reason=reason,
        dataset_name=dataset.name,
        evals=[(None, cand_offline, cand_holdout, {"role": "candidate"}),
               (served.id, None, served_holdout, {"role": "served", "next_to": name})],
    )
    seconds["total"] = time.perf_counter() - t0
    log(f"retrain {name}: v{row.version} {'promoted' if promote else 'rejected'}: {reason}")
    return RetrainResult(name=name, version=row.version, version_id=row.id, promoted=promote, reason=reason,
                         watermark=watermark, metrics=metrics, seconds=seconds, model=candidate)


def rollback(Session, name: str) -> Any:
    """Serve the latest earlier promoted version of `name` (the served one is marked rejected); its row."""
    from annotation import registry

    with Session() as s, s.begin():
        row = registry.rollback(s, name)
        s.flush()
        s.expunge(row)
    return row


class ServedModelWatcher:
    """Keeps the promoted version of one model loaded; `refresh()` swaps in a newly promoted one (no restart).

    A replica calls `refresh()` every few seconds (or after a retrain); it reads one row and loads the
    artifact only when the promoted version changed.
    """

    def __init__(self, Session, name: str, artifacts_dir: Path) -> None:
        self.Session, self.name, self.artifacts_dir = Session, name, Path(artifacts_dir)
        self.version_id: int | None = None
        self.model = None

    def refresh(self) -> bool:
        """True when a different version was loaded."""
        from annotation import registry

        with self.Session() as s:
            row = registry.promoted_version(s, self.name)
            if row is None or row.id == self.version_id:
                return False
            version_id, artifact = row.id, row.artifact
        self.model = load_version_model(self.artifacts_dir, artifact)
        self.version_id = version_id
        return True


@dataclass
class RetrainSchedule:
    """Run a retrain after every `every_events` new feedback events or `every_minutes` minutes (None = off).

    Both off by default. `tick(latest_event_id, now)` is cheap; it calls `run()` when due and remembers the
    watermark and time of the last run. The app calls it from its background worker.
    """

    run: Callable[[], Any]
    every_events: int | None = None
    every_minutes: float | None = None
    last_event_id: int = 0
    last_run: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.every_events is not None and (isinstance(self.every_events, bool) or self.every_events < 1):
            raise ValueError(f"every_events: expected a positive integer or None, got {self.every_events!r}")
        if self.every_minutes is not None and not self.every_minutes > 0:
            raise ValueError(f"every_minutes: expected a positive number or None, got {self.every_minutes!r}")

    @property
    def enabled(self) -> bool:
        return self.every_events is not None or self.every_minutes is not None

    def due(self, latest_event_id: int | None, now: dt.datetime) -> bool:
        latest = latest_event_id or 0
        if latest <= self.last_event_id:
            return False  # nothing new to learn from
        if self.every_events is not None and latest - self.last_event_id >= self.every_events:
            return True
        if self.every_minutes is not None:
            if self.last_run is None:
                return True
            return (now - self.last_run).total_seconds() >= 60 * self.every_minutes
        return False

    def tick(self, latest_event_id: int | None, now: dt.datetime | None = None) -> Any:
        """Run when due; returns run()'s result, or None when not due."""
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if not self.due(latest_event_id, now):
            return None
        result = self.run()
        self.last_event_id, self.last_run = int(latest_event_id or 0), now
        return result


# ------------------------------------------------------------------------------------------------------------
# counterfactual estimate from the store's impressions
# ------------------------------------------------------------------------------------------------------------
def ips_from_store(impressions: pd.DataFrame, feedback: pd.DataFrame, candidate, theta: Sequence[float],
                   model: str | None = None, n_boot: int = 500, seed: int = 0):
    """IPS / SNIPS like rate of `candidate` from the app's logged slates (`recommenders.ips.ips_like_rate`).

    impressions: the store's impressions_frame (impression_id, user_id, model, model_b, item_ids, created_at);
    feedback: its feedback_frame (user_id, item_id, kind, impression_id, created_at). Only single-model
    slates are used (of `model` when given). The app ranks deterministically, so the logging propensity of a
    shown item is 1 at its position (stated; `support` in the result says how much of the candidate's
    exposure that covers). `theta`: examination probabilities per position - the app's deterministic logs
    cannot estimate them; pass a fit from randomised slates (`recommenders.ips.estimate_examination`).
    The candidate's slate for an impression: its top-k for that user, folded in from the user's likes logged
    before the impression (a user the candidate was fitted on starts from their training history); slates
    of users it cannot rank (new, no earlier likes) are left out.
    """
    from recommenders.ips import ips_like_rate

    theta = np.asarray(theta, dtype=float)
    K = len(theta)
    imps = impressions[impressions["model_b"].isna()] if "model_b" in impressions.columns else impressions
    if model is not None:
        imps = imps[imps["model"] == model]
    likes = feedback[feedback["kind"] == "like"]
    liked_on = set(zip(likes["impression_id"].dropna().astype(int), likes["item_id"].astype(str)))
    by_user = {u: g.sort_values("created_at") for u, g in likes.groupby(likes["user_id"].astype(str))}
    fitted_users = set(candidate.user_ids)
    logged, props, cand = [], [], []
    for imp in imps.itertuples(index=False):
        user = str(imp.user_id)
        shown = [str(i) for i in imp.item_ids][:K]
        if not shown:
            continue
        before = by_user.get(user)
        earlier = [] if before is None else before[before["created_at"] < imp.created_at]["item_id"].astype(str).tolist()
        known = user in fitted_users
        if not known and not earlier:
            continue
        ids, _ = candidate.recommend_with_feedback(user if known else None, liked=earlier, k=K)
        slate = int(imp.impression_id)
        logged += [(slate, i, k, int((slate, i) in liked_on)) for k, i in enumerate(shown)]
        props += [(slate, i, k, 1.0) for k, i in enumerate(shown)]
        cand += [(slate, i, k) for k, i in enumerate(ids)]
    if not logged:
        raise ValueError("impressions: no single-model slate of a user the candidate can rank")
    return ips_like_rate(pd.DataFrame(logged, columns=["slate", "item_id", "position", "liked"]),
                         pd.DataFrame(props, columns=["slate", "item_id", "position", "prob"]),
                         pd.DataFrame(cand, columns=["slate", "item_id", "position"]), theta, n_boot=n_boot, seed=seed)
