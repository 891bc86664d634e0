"""The gate of `app.learning.retrain`: its configuration and its pure steps (DataFrames in, numbers out), used by the
gated retraining and, without a database, by the learning simulation (`app.simulate.learning_loop`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

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
    # Users ranked against the whole catalogue, per comparison: at most this many, a seeded sample (the same for the
    # candidate and the served version, so the comparison stays paired). Every user where there are fewer (ml-100k's
    # 943); at 40k users and 25k items all of them would take most of an hour; 5,000 keep NDCG@10's standard error
    # near 0.004. None: every user, whatever the size.
    eval_users: int | None = 5_000
    eval_seed: int = 0  # the sample's seed
    # A retrain estimated (models' `cost()` fit times + the evaluation's size) to take longer than this is refused
    # before it starts, with a message naming the estimate and the budget. None: no budget.
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.eval_users is not None and (isinstance(self.eval_users, bool) or not isinstance(self.eval_users, int)
                                            or self.eval_users < 1):
            raise ValueError(f"eval_users: expected None or a positive number of users, got {self.eval_users!r}")
        if self.time_budget_s is not None and not (isinstance(self.time_budget_s, (int, float))
                                                   and not isinstance(self.time_budget_s, bool)
                                                   and math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise ValueError(f"time_budget_s: expected None or a positive number of seconds, got {self.time_budget_s!r}")
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance: expected a finite number >= 0, got {self.tolerance!r}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction: expected a fraction in (0, 1), got {self.holdout_fraction!r}")
        if self.offline_part not in ("valid", "test"):
            raise ValueError(f"offline_part: expected 'valid' or 'test', got {self.offline_part!r}")
        if self.metric not in (f"{m}@{self.k}" for m in ("ndcg", "recall", "hit", "mrr", "precision")):
            raise ValueError(f"metric: expected one of ndcg/recall/hit/mrr/precision@{self.k}, got {self.metric!r}")


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


def sample_users(users: Sequence[str] | pd.Series | np.ndarray, limit: int | None, seed: int) -> set[str] | None:
    """A seeded sample of at most `limit` of the distinct `users`; None when there are not more than `limit`
    (every user counts: no sampling at all)."""
    distinct = np.unique(np.asarray(users, dtype=str))
    if limit is None or len(distinct) <= limit:
        return None
    return set(np.random.default_rng(seed).choice(distinct, limit, replace=False).tolist())


def offline_sample(split, config: GateConfig) -> tuple[set[str] | None, dict[str, Any]]:
    """(the users the offline split is evaluated on, None for all; its description for the registry).

    Drawn from the users with a positive in the valid part (the part the gate reads); the test part is evaluated on
    the same users. The description is compared before a served version's recorded figure is reused."""
    valid_users = split.valid["user_id"].astype(str)
    users = sample_users(valid_users, config.eval_users, config.eval_seed)
    total = int(valid_users.nunique())
    spec = {"users": total if users is None else len(users), "of": total,
            "seed": None if users is None else config.eval_seed}
    return users, spec


def _train_frame(base: pd.DataFrame) -> pd.DataFrame:
    weight = base["weight"] if "weight" in base.columns else np.ones(len(base))
    frame = pd.DataFrame({"user_id": base["user_id"].astype(str).to_numpy(),
                          "item_id": base["item_id"].astype(str).to_numpy(),
                          "weight": np.asarray(weight, dtype=float)})
    if "rating" in base.columns:  # read by the models that use them (ease-text; `fit` parses them), as when serving
        frame["rating"] = base["rating"].to_numpy()
    return frame


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
                    ks: tuple[int, ...] = (10, 20), users: set[str] | None = None) -> dict[str, dict[str, float]]:
    """{"valid": {...}, "test": {...}} of the recipe (name, params, signal) on the fixed offline split.

    The signal's pairs that are in the split's valid or test parts are left out, so nothing evaluated is
    trained on. Iterative models early-stop on the valid part (the same for candidate and served, so the
    comparison stays fair; the test part is untouched). `users`: rank only these users' valid and test items
    (`offline_sample`); the model is fitted on the whole train part either way.
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
    if users is not None:
        keep = lambda part: part[part["user_id"].astype(str).isin(users)]  # noqa: E731
        split = dataclasses.replace(split, valid=keep(split.valid), test=keep(split.test))
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
# what a retrain will cost, before it starts
# ------------------------------------------------------------------------------------------------------------
# Seconds to score and rank one (user, item) cell in an evaluation: the user's dense score vector, the seen items
# masked, a top-k (recommenders.evaluation.rank_metrics; a sparse item-item model ranks its sparse row sum and costs
# less). Measured ~8-15 ns on this 2-core machine (ease-text on ml-100k, sparse-ease-text at 25k); 2e-8 keeps it an
# upper bound under load.
EVAL_CELL_SECONDS = 2e-8


@dataclass(frozen=True)
class RetrainEstimate:
    """Seconds each step of a retrain is expected to take (None: a fit that cannot be estimated - an iterative
    model, whose epochs early stopping picks), from the models' `cost()` and the evaluation's size."""

    steps: dict[str, float | None]
    fit_seconds: float | None  # one fit of the recipe (`cost().fit_seconds`: one core of this machine)
    how: str  # the sizes behind it, in words

    @property
    def total(self) -> float | None:
        values = list(self.steps.values())
        return None if any(v is None for v in values) else float(sum(values))

    def to_dict(self) -> dict[str, Any]:
        return {"steps": dict(self.steps), "total": self.total, "fit_seconds": self.fit_seconds, "how": self.how}


def estimate_retrain(name: str, params: Mapping[str, Any] | None, n_users: int, n_items: int, nnz: int,
                     feature_dims: Mapping[str, int] | None, *, offline_users: int, holdout_users: int,
                     bootstrap: bool = False, served_offline: bool = False) -> RetrainEstimate:
    """The retrain's time, step by step, before anything is fitted.

    Fits: the candidate (an iterative model: a probe and the final fit), the recipe on the offline split's train
    part, and - when nothing is served yet - version 1 and its offline fit, or - when the served version's offline
    figure cannot be reused - the served recipe on the split. Evaluation: `offline_users` ranked on the valid and
    the test part, `holdout_users` by both models, each against `n_items` items (`EVAL_CELL_SECONDS` a cell).
    """
    from recommenders.models import create_model

    model = create_model(name, **dict(params or {}))
    fit = model.cost(n_users, n_items, nnz, dict(feature_dims or {})).fit_seconds
    fit = None if fit is None else float(fit) * (2 if model.iterative else 1)
    offline_eval = 2.0 * offline_users * n_items * EVAL_CELL_SECONDS
    plus = lambda a, b: None if a is None else a + b  # noqa: E731
    steps: dict[str, float | None] = {}
    if bootstrap:
        steps["bootstrap"] = None if fit is None else 2 * fit + offline_eval
    steps["fit"] = fit
    steps["offline"] = plus(fit, offline_eval)
    if served_offline:
        steps["served_offline"] = plus(fit, offline_eval)
    steps["holdout"] = 2.0 * holdout_users * n_items * EVAL_CELL_SECONDS
    how = (f"{n_items:,} items, {n_users:,} users, {nnz:,} interactions; one {name} fit about "
           + ("unknown (iterative: early stopping picks the epochs)" if fit is None else f"{fit:.0f} s")
           + f"; {offline_users:,} users evaluated offline, {holdout_users:,} on the holdout")
    return RetrainEstimate(steps, fit, how)
