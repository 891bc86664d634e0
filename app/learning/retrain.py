"""Gated retraining: logs -> candidate -> evaluation next to the served version -> promote or reject -> registry.

    result = retrain(Session, dataset, "ease", artifacts)              # python -m app.train --model ease
    rollback(Session, "ease")                                          # python -m app.train --model ease --rollback
    version, model = served.load_promoted(Session, "ease", artifacts)  # what every replica serves

`artifacts` is an `app.learning.artifacts.ModelArtifacts` (the blob store every replica shares; the app builds it from
VITRINE_BLOB_URL) or a directory (a local blob store there).

The steps of `retrain`, top to bottom (before 4, the retrain's time is estimated from the models' `cost()` fit times
and the evaluation's size, `estimate_retrain`; over `GateConfig.time_budget_s` - VITRINE_RETRAIN_BUDGET_MIN in the
app - it is refused with RetrainBudgetError, naming the estimate and the budget, before anything is fitted):
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
   Each comparison ranks at most `GateConfig.eval_users` users (5,000): above that a seeded sample, the same for
   the candidate and the served version (a served figure recorded on other users is fitted again), so the
   comparison stays paired; ml-100k's 943 users are all ranked, as before the sample existed.
6. The gate: promote only when the candidate is not worse than the served version on both, by more than
   `tolerance` (absolute, on `metric`, default NDCG@10, tolerance 0). With no held-out feedback yet (no
   likes logged), the holdout comparison is skipped and the reason says so.
7. Registry: the candidate is saved in the blob store as one blob, `registry/recommender/<name>/v<version>-<sha>.tar`
   (`app.learning.artifacts`), and registered with its watermark, metrics (its own and the served version's) and the decision
   with its reason - promoted or rejected, every version is kept. Promotion marks it served; replicas see
   it through `promoted_version` / `ServedModelWatcher` and swap models without a restart. The result (and the
   version's config) carries the estimate, the budget and the seconds each step took.

What is served is loaded by `app.learning.served` (`load_promoted`, `ServedModelWatcher`); `app.learning.schedule`'s
`RetrainSchedule` runs `retrain` after every N new events or T minutes (both off by default).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from app.errors import AppInputError
from app.learning.artifacts import ModelArtifacts
from app.learning.gate import (  # noqa: F401 - re-exported: the gate's steps are part of this module's interface
    HOLDOUT_SPLIT, LIKED_KINDS, GateConfig, HoldoutCase, RetrainEstimate, estimate_retrain, fit_on, gate,
    holdout_cases, holdout_metrics, offline_metrics, offline_sample, recent_holdout, sample_users,
)
from app.learning.served import load_version_model

log = logging.getLogger("vitrine")


class RetrainBudgetError(AppInputError):
    """A retrain estimated to take longer than its time budget (`GateConfig.time_budget_s`); refused before it
    starts. The message names the estimate, the budget and what to raise."""


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
    # seconds each step took: read (events, signal, holdout), bootstrap (version 1, when nothing was served), fit (the
    # candidate), offline (its recipe on the split + ranking), served_offline (when the served figure was not
    # reusable), holdout (both models), register; evaluate (offline + served_offline + holdout), total
    seconds: dict[str, float] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)  # RetrainEstimate.to_dict(): the same steps, before
    budget_s: float | None = None  # the time budget it ran under (None: none)
    model: Any = None  # the candidate recommender (served now if promoted)

    def timing(self) -> str:
        """One line: the estimate, the budget and what each step took."""
        return timing_line(self.estimate, self.budget_s, self.seconds)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("model")
        return out


# ------------------------------------------------------------------------------------------------------------
# with the store: registry, artifacts, eval_runs
# ------------------------------------------------------------------------------------------------------------
def _record_evals(s, version_id: int, dataset_name: str, offline: Mapping[str, Mapping[str, float]] | None,
                  holdout: Mapping[str, float] | None, config: Mapping[str, Any]) -> None:
    from annotation import registry

    for part, values in (offline or {}).items():
        registry.record_version_eval(s, version_id, dataset_name, f"random:{part}", values, config=config)
    if holdout and holdout.get("n_users", 0) > 0:
        registry.record_version_eval(s, version_id, dataset_name, HOLDOUT_SPLIT,
                                     {k: v for k, v in holdout.items() if math.isfinite(v)}, config=config)


def _register(Session, name: str, model, artifacts: ModelArtifacts, *, watermark: int | None, metrics: dict,
              config: dict, decision: str, reason: str, dataset_name: str,
              evals: Sequence[tuple[int | None, Any, Any, dict]] = ()) -> Any:
    """Register, save the artifact, record the evaluations and the decision in one transaction."""
    from annotation import registry

    with Session() as s, s.begin():
        row = registry.register(s, name, "pending", watermark=watermark, metrics=json_safe(metrics),
                                config=json_safe(config))
        row.artifact = artifacts.save_dir("recommender", name, row.version, model.save)
        for version_id, offline, holdout, cfg in evals:
            _record_evals(s, row.id if version_id is None else version_id, dataset_name, offline, holdout, cfg)
        registry.decide(s, row.id, decision, reason)
        s.flush()
        s.expunge(row)
    return row


def json_safe(value: Any) -> Any:
    """NaN and infinities -> None, recursively (JSON has no NaN); numpy numbers -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
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


def bootstrap(Session, dataset, name: str, artifacts: ModelArtifacts | Path | str, *, features=None, params=None,
              config: GateConfig = GateConfig(), model=None, split=None) -> Any:
    """Register and promote version 1: `model` (default: `name` fitted on the dataset alone), no logs."""
    from recommenders.splits import random_split

    split = split if split is not None else random_split(dataset.interactions, seed=config.split_seed)
    if model is None:
        from recommenders.training import train_model

        model = train_model(dataset, name, features=features, **dict(params or {}))
    users, sample = offline_sample(split, config)
    offline = offline_metrics(name, split, dataset.item_ids, None, features, params, users=users)
    metrics = {"candidate": {"offline": offline, "holdout": {}}, "split_seed": config.split_seed,
               "offline_users": sample}
    return _register(Session, name, model, ModelArtifacts.at(artifacts), watermark=None, metrics=metrics,
                     config={"params": dict(params or {}), "events": 0, "signal_rows": 0},
                     decision="promoted", reason="initial version: trained on the dataset alone, nothing served before",
                     dataset_name=dataset.name, evals=[(None, offline, None, {"role": "candidate"})])


def gate_config(settings, tolerance: float | None = None) -> GateConfig:
    """The gate the app's settings ask for: VITRINE_GATE_TOLERANCE (or `tolerance`), VITRINE_RETRAIN_BUDGET_MIN."""
    budget = settings.retrain_budget_min
    return GateConfig(tolerance=settings.gate_tolerance if tolerance is None else tolerance,
                      time_budget_s=None if budget is None else 60.0 * budget)


def format_minutes(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def timing_line(estimate: Mapping[str, Any], budget_s: float | None, seconds: Mapping[str, float]) -> str:
    """'estimated 12 s (budget 60.0 min); took 9 s: read 0.4 s, fit 3.1 s, ...'"""
    took = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items() if k not in ("total", "evaluate"))
    budget = "no budget" if budget_s is None else f"budget {format_minutes(budget_s)}"
    return (f"estimated {format_minutes(estimate.get('total'))} ({budget}); took "
            f"{format_minutes(seconds.get('total'))}: {took}")


def check_budget(name: str, estimate: RetrainEstimate, budget_s: float | None) -> None:
    """RetrainBudgetError when the estimate is known and over `budget_s`."""
    total = estimate.total
    if budget_s is None or total is None or total <= budget_s:
        return
    steps = ", ".join(f"{k} {format_minutes(v)}" for k, v in estimate.steps.items())
    raise RetrainBudgetError(
        f"retrain {name}: estimated {format_minutes(total)} ({steps}; {estimate.how}), over the retrain time budget "
        f"of {format_minutes(budget_s)}. Raise VITRINE_RETRAIN_BUDGET_MIN (GateConfig.time_budget_s) to run it, "
        f"lower GateConfig.eval_users to evaluate fewer users, or retrain a cheaper model.")


def default_params(name: str, dataset, features: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    """The parameters the app serves `name` with at this catalogue's size (`recommenders.sizing.scaled_params`:
    e.g. sparse-ease-text on the text's top 64 directions above 50k items), so a retrain fits what is served."""
    from recommenders.sizing import scaled_params

    return scaled_params(name, len(dataset.item_ids), has_text=bool(features) and "text" in features)


def retrain(Session, dataset, name: str, artifacts: ModelArtifacts | Path | str, *, features: Mapping[str, np.ndarray] | None = None,
            params: Mapping[str, Any] | None = None, config: GateConfig = GateConfig(),
            corrupt: Callable[[pd.DataFrame], pd.DataFrame] | None = None, split=None,
            log: Callable[[str], Any] = lambda m: None) -> RetrainResult:
    """Build a candidate on the dataset + the logs, evaluate it next to the served version, gate, register.

    `corrupt`: applied to the candidate's training signal (after the holdout is taken out) - a drill that
    checks the gate, e.g. shuffled item ids; never used in production. `split`: the fixed offline split
    (default: RecBole's random 8:1:1 of the dataset with `config.split_seed`). `params`: the model's parameters
    (default: those the app serves it with at this size, `default_params`).

    Before anything is fitted the retrain's time is estimated (`estimate_retrain`); over `config.time_budget_s`
    it raises RetrainBudgetError. Offline and on the holdout at most `config.eval_users` users are ranked (a
    seeded sample, the same for both versions).
    """
    from annotation import registry
    from recommenders.splits import random_split
    from recommenders.training import train_model

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def took(step: str) -> None:
        now = time.perf_counter()
        seconds[step] = seconds.get(step, 0.0) + now - clock[0]
        clock[0] = now

    params = dict(default_params(name, dataset, features) if params is None else params)
    artifacts = ModelArtifacts.at(artifacts)
    split = split if split is not None else random_split(dataset.interactions, seed=config.split_seed)
    with Session() as s:
        served = registry.promoted_version(s, name)
        if served is not None:
            s.expunge(served)
        events = registry.training_events(s)
    watermark = int(events["id"].max()) if len(events) else None
    # 1-3. signal and the recent holdout; the users each comparison ranks
    signal = _signal(events)
    rest, holdout = recent_holdout(signal, config.holdout_fraction)
    train_signal = corrupt(rest.copy()) if corrupt is not None else rest
    offline_users, offline_spec = offline_sample(split, config)
    holdout_users = sample_users(holdout["user_id"], config.eval_users, config.eval_seed) if len(holdout) else None
    n_holdout_users = int(holdout["user_id"].nunique()) if len(holdout) else 0
    served_offline = None
    if served is not None and (served.metrics or {}).get("split_seed") == config.split_seed and \
            _same_sample((served.metrics or {}).get("offline_users"), offline_spec):
        served_offline = (served.metrics or {}).get("candidate", {}).get("offline") or None
    took("read")
    # the estimate, before anything is fitted
    n_users = int(pd.concat([dataset.interactions["user_id"].astype(str), train_signal["user_id"].astype(str)]
                            ).nunique())
    estimate = estimate_retrain(
        name, params, n_users, len(dataset.item_ids), len(dataset.interactions) + len(train_signal),
        {k: int(np.asarray(v).shape[1]) for k, v in (features or {}).items()},
        offline_users=offline_spec["users"],
        holdout_users=n_holdout_users if holdout_users is None else len(holdout_users),
        bootstrap=served is None, served_offline=served is not None and served_offline is None)
    log(f"retrain {name}: estimated {format_minutes(estimate.total)} "
        f"({', '.join(f'{k} {format_minutes(v)}' for k, v in estimate.steps.items())}; {estimate.how}); "
        + ("no time budget" if config.time_budget_s is None else f"budget {format_minutes(config.time_budget_s)}"))
    check_budget(name, estimate, config.time_budget_s)
    clock[0] = time.perf_counter()
    if served is None:
        log(f"retrain {name}: nothing served yet, registering version 1 (dataset alone)")
        bootstrap(Session, dataset, name, artifacts, features=features, params=params, config=config, split=split)
        with Session() as s:
            served = registry.promoted_version(s, name)
            s.expunge(served)
        served_offline = (served.metrics or {}).get("candidate", {}).get("offline")
        took("bootstrap")
    # 4. the candidate
    from recommenders.signals import training_frame

    candidate = train_model(dataset, name, features=features, extra_interactions=training_frame(train_signal),
                            **params)
    took("fit")
    # 5. evaluation: offline split (served: as recorded when it was the candidate) and recent holdout
    cand_offline = offline_metrics(name, split, dataset.item_ids, train_signal, features, params, users=offline_users)
    took("offline")
    if not served_offline:
        served_events = events[events["id"] <= served.watermark] if served.watermark is not None else events.iloc[:0]
        served_signal = _signal(served_events)
        served_signal = served_signal[~served_signal.set_index(["user_id", "item_id"]).index.isin(
            holdout.set_index(["user_id", "item_id"]).index)]
        served_offline = offline_metrics(name, split, dataset.item_ids, served_signal, features, params,
                                         users=offline_users)
        took("served_offline")
    served_model = load_version_model(artifacts, served.artifact)
    cases = holdout_cases(dataset.interactions, rest, holdout, users=holdout_users)
    cand_holdout = holdout_metrics(candidate, k=config.k, cases=cases)
    served_holdout = holdout_metrics(served_model, k=config.k, cases=cases)
    took("holdout")
    # 6. the gate
    part = config.offline_part
    promote, reason = gate({"offline": cand_offline[part], "holdout": cand_holdout},
                           {"offline": served_offline[part], "holdout": served_holdout}, config)
    # 7. the registry
    holdout_spec = {"users": len(cases), "of": n_holdout_users,
                    "seed": None if holdout_users is None else config.eval_seed}
    metrics = {
        "candidate": {"offline": cand_offline, "holdout": cand_holdout},
        "served": {"offline": served_offline, "holdout": served_holdout},
        "served_version": served.version, "split_seed": config.split_seed, "gate_part": part,
        "metric": config.metric, "tolerance": config.tolerance,
        "offline_users": offline_spec, "holdout_users": holdout_spec,
    }
    seconds["evaluate"] = sum(seconds.get(k, 0.0) for k in ("offline", "served_offline", "holdout"))
    run_config = {"params": params, "events": int(len(events)), "signal_rows": int(len(rest)),
                  "holdout_rows": int(len(holdout)), "corrupted": corrupt is not None,
                  "estimate": estimate.to_dict(), "budget_s": config.time_budget_s}
    row = _register(
        Session, name, candidate, artifacts, watermark=watermark, metrics=metrics,
        config={**run_config, "seconds": seconds}, decision="promoted" if promote else "rejected", reason=reason,
        dataset_name=dataset.name,
        evals=[(None, cand_offline, cand_holdout, {"role": "candidate"}),
               (served.id, None, served_holdout, {"role": "served", "next_to": name})],
    )
    took("register")
    seconds["total"] = time.perf_counter() - t0
    result = RetrainResult(name=name, version=row.version, version_id=row.id, promoted=promote, reason=reason,
                           watermark=watermark, metrics=metrics, seconds=seconds, estimate=estimate.to_dict(),
                           budget_s=config.time_budget_s, model=candidate)
    log(f"retrain {name}: v{row.version} {'promoted' if promote else 'rejected'}: {reason}; {result.timing()}")
    return result


def _same_sample(recorded: Mapping[str, Any] | None, now: Mapping[str, Any]) -> bool:
    """Whether a served version's recorded offline figure was taken on the users this retrain ranks. A version
    recorded before samples existed ranked every user: the same when no sample is drawn now."""
    if recorded is None:
        return now.get("seed") is None
    return dict(recorded) == dict(now)


def rollback(Session, name: str, kind: str = "recommender") -> Any:
    """Serve the latest earlier promoted version of (`name`, `kind`) (the served one is marked rejected); its row.
    Every replica follows at its next poll (`ServedModelWatcher`)."""
    from annotation import registry

    with Session() as s, s.begin():
        row = registry.rollback(s, name, kind)
        s.flush()
        s.expunge(row)
    return row
