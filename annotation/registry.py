"""The model registry: every trained version of a model, the gate's decision about it, and which one is served.

    with Session() as s, s.begin():
        v = registry.register(s, "ease", "models/ease/v3", watermark=1234, metrics={...}, config={...})
        registry.decide(s, v.id, "promoted", "not worse on the offline split (+0.002) nor the recent holdout")
    with Session() as s, s.begin():
        served = registry.promoted_version(s, "ease")          # what every replica should serve
        registry.rollback(s, "ease")                           # one command back to the version before

Rules:
- versions count 1, 2, ... per (name, kind); kind is "recommender" or "preference" (a reward model);
- at most one version per (name, kind) is promoted (served); `promote` demotes the others in the same
  transaction;
- `rollback` demotes the served version, marks it rejected with the reason "rolled back ...", and serves the
  latest earlier version that the gate promoted (and nobody rolled back); a second rollback goes one further;
- nothing is deleted: rejected versions stay with their metrics and reason;
- the data watermark is the last `feedback_events.id` a version was trained on (`training_events` reads
  the events up to a watermark, so a version can be rebuilt from the same data).
Like the store, every function takes `session` first and the caller frames the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotation import _validate as v
from annotation.errors import AnnotationError, InvalidInputError
from annotation.frames import _frame, _window
from annotation.models import (
    DECISIONS,
    MODEL_LEN,
    PATH_LEN,
    VERSION_KINDS,
    EvalRun,
    FeedbackEvent,
    ModelVersion,
    utcnow,
)

__all__ = [
    "UnknownModelVersionError",
    "register",
    "decide",
    "promote",
    "rollback",
    "promoted_version",
    "get_version",
    "list_versions",
    "versions_frame",
    "record_version_eval",
    "version_evals_frame",
    "training_events",
    "latest_event_id",
]

_MAX_ID = 2**63 - 1


class UnknownModelVersionError(AnnotationError, LookupError):
    """A model version id (or a version to roll back to) that the registry does not have."""


def _kind(kind: str) -> str:
    return v.choice(kind, "kind", VERSION_KINDS)


def get_version(session: Session, version_id: int) -> ModelVersion:
    version_id = v.integer(version_id, "version_id", 1, _MAX_ID)
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise UnknownModelVersionError(f"version_id: no model version with id {version_id}")
    return row


def register(session: Session, name: str, artifact: str, *, kind: str = "recommender", watermark: int | None = None,
             metrics: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
             at: dt.datetime | None = None) -> ModelVersion:
    """Add the next version of (name, kind), not yet gated (decision None) and not served."""
    name = v.text(name, "name", MODEL_LEN)
    artifact = v.text(artifact, "artifact", PATH_LEN)
    kind = _kind(kind)
    watermark = v.integer(watermark, "watermark", 0, _MAX_ID, optional=True)
    metrics = v.json_object(metrics or {}, "metrics")
    config = v.json_object(config or {}, "config")
    # serialise concurrent registrations of the same model: the unique constraint rejects a duplicate number
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name,
                                                                           ModelVersion.kind == kind))
    row = ModelVersion(name=name, kind=kind, version=(latest or 0) + 1, artifact=artifact, watermark=watermark,
                       metrics=metrics, config=config, decision=None, reason=None, promoted=False,
                       created_at=v.timestamp(at) or utcnow())
    session.add(row)
    session.flush()
    return row


def promote(session: Session, version_id: int, reason: str | None = None, at: dt.datetime | None = None
            ) -> ModelVersion:
    """Serve this version: it becomes the only promoted one of its (name, kind); its decision becomes promoted."""
    row = get_version(session, version_id)
    session.execute(update(ModelVersion).where(ModelVersion.name == row.name, ModelVersion.kind == row.kind,
                                               ModelVersion.id != row.id).values(promoted=False))
    row.promoted = True
    row.promoted_at = v.timestamp(at) or utcnow()
    row.decision = "promoted"
    if reason is not None:
        row.reason = v.text(reason, "reason", 4000)
    session.flush()
    return row


def decide(session: Session, version_id: int, decision: str, reason: str,
           metrics: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> ModelVersion:
    """Record the gate's decision (promoted | rejected) and why; a promoted version is served at once."""
    decision = v.choice(decision, "decision", DECISIONS)
    reason = v.text(reason, "reason", 4000)
    row = get_version(session, version_id)
    if metrics is not None:
        row.metrics = {**(row.metrics or {}), **v.json_object(metrics, "metrics")}
    if decision == "promoted":
        return promote(session, row.id, reason, at)
    row.decision, row.reason = decision, reason
    session.flush()
    return row


def promoted_version(session: Session, name: str, kind: str = "recommender") -> ModelVersion | None:
    """The served version of (name, kind), or None when none was promoted yet."""
    name = v.text(name, "name", MODEL_LEN)
    return session.scalars(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.kind == _kind(kind),
                                                      ModelVersion.promoted.is_(True))).first()


def rollback(session: Session, name: str, kind: str = "recommender", at: dt.datetime | None = None) -> ModelVersion:
    """Serve the latest earlier promoted version instead of the served one (which is marked rejected)."""
    current = promoted_version(session, name, kind)
    if current is None:
        raise UnknownModelVersionError(f"name: no served version of {name!r} ({kind}) to roll back")
    previous = session.scalars(
        select(ModelVersion).where(ModelVersion.name == current.name, ModelVersion.kind == current.kind,
                                   ModelVersion.decision == "promoted", ModelVersion.version < current.version)
        .order_by(ModelVersion.version.desc())).first()
    if previous is None:
        raise UnknownModelVersionError(f"name: version {current.version} of {name!r} is the first promoted one; "
                                       "there is no earlier version to roll back to")
    when = v.timestamp(at) or utcnow()
    current.promoted = False
    current.decision = "rejected"
    current.reason = f"rolled back at {when.isoformat(timespec='seconds')} to version {previous.version}" + (
        f" (gate: {current.reason})" if current.reason else "")
    session.flush()
    return promote(session, previous.id, at=when)


def list_versions(session: Session, name: str | None = None, kind: str | None = None) -> list[ModelVersion]:
    """Every version (of `name` / `kind` when given), oldest first."""
    statement = select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id)
    if name is not None:
        statement = statement.where(ModelVersion.name == v.text(name, "name", MODEL_LEN))
    if kind is not None:
        statement = statement.where(ModelVersion.kind == _kind(kind))
    return list(session.scalars(statement))


def versions_frame(session: Session, name: str | None = None) -> pd.DataFrame:
    """One row per version: version_id, name, kind, version, artifact, watermark (Int64), decision, reason,
    promoted (bool), promoted_at, created_at, metrics (dict), config (dict)."""
    m = ModelVersion
    statement = select(m.id, m.name, m.kind, m.version, m.artifact, m.watermark, m.decision, m.reason, m.promoted,
                       m.promoted_at, m.created_at, m.metrics, m.config).order_by(m.created_at, m.id)
    if name is not None:
        statement = statement.where(m.name == v.text(name, "name", MODEL_LEN))
    columns = ["version_id", "name", "kind", "version", "artifact", "watermark", "decision", "reason", "promoted",
               "promoted_at", "created_at", "metrics", "config"]
    return _frame(session, statement, columns, times=("promoted_at", "created_at"),
                  dtypes={"version": "int64", "watermark": "Int64", "promoted": "bool"})


def record_version_eval(session: Session, version_id: int, dataset: str, split: str, metrics: Mapping[str, float],
                        config: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> EvalRun:
    """An eval_runs row for a registered version (model = its name, model_version_id = its id)."""
    row = get_version(session, version_id)
    if not isinstance(metrics, Mapping) or not metrics:
        raise InvalidInputError(f"metrics must be a non-empty dict of metric name -> number, got {metrics!r}")
    clean = {v.text(k, "metrics key", 64): v.number(val, f"metrics[{k!r}]", -1e12, 1e12) for k, val in metrics.items()}
    run = EvalRun(model=row.name, dataset=v.text(dataset, "dataset", MODEL_LEN), split=v.text(split, "split", 64),
                  metrics=clean, config={"version": row.version, **v.json_object(config or {}, "config")},
                  model_version_id=row.id, created_at=v.timestamp(at) or utcnow())
    session.add(run)
    session.flush()
    return run


def version_evals_frame(session: Session, name: str | None = None) -> pd.DataFrame:
    """Evaluation runs of registered versions: run_id, version_id, name, version, decision, split, dataset,
    created_at, config (dict), then one float column per metric name (NaN where a run lacks it), sorted."""
    statement = (select(EvalRun.id, EvalRun.model_version_id, ModelVersion.name, ModelVersion.version,
                        ModelVersion.decision, EvalRun.split, EvalRun.dataset, EvalRun.created_at, EvalRun.config,
                        EvalRun.metrics)
                 .join(ModelVersion, ModelVersion.id == EvalRun.model_version_id)
                 .order_by(EvalRun.created_at, EvalRun.id))
    if name is not None:
        statement = statement.where(ModelVersion.name == v.text(name, "name", MODEL_LEN))
    frame = _frame(session, statement, ["run_id", "version_id", "name", "version", "decision", "split", "dataset",
                                        "created_at", "config", "metrics"], dtypes={"version": "int64"})
    metrics = pd.DataFrame.from_records(list(frame["metrics"]), index=frame.index) if len(frame) else pd.DataFrame()
    frame = frame.drop(columns="metrics")
    for column in sorted(metrics.columns):
        frame[column] = metrics[column].astype("float64")
    return frame


def training_events(session: Session, after: int | None = None, up_to: int | None = None,
                    since: dt.datetime | None = None, until: dt.datetime | None = None) -> pd.DataFrame:
    """Feedback events with after < id <= up_to, in id order, in the shape `recommenders.signals` reads.

    Columns: id (int64, the watermark's unit), event_id, user_id, item_id, kind, value (float, NaN when none),
    created_at, impression_id (Int64), model (the credited model, None without impression), position (Int64).
    """
    f = FeedbackEvent
    statement = select(f.id, f.event_id, f.user_id, f.item_id, f.kind, f.value, f.created_at, f.impression_id,
                       f.model, f.position).order_by(f.id)
    after = v.integer(after, "after", 0, _MAX_ID, optional=True)
    up_to = v.integer(up_to, "up_to", 0, _MAX_ID, optional=True)
    if after is not None:
        statement = statement.where(f.id > after)
    if up_to is not None:
        statement = statement.where(f.id <= up_to)
    statement = _window(statement, f.created_at, since, until)
    return _frame(session, statement, ["id", "event_id", "user_id", "item_id", "kind", "value", "created_at",
                                       "impression_id", "model", "position"],
                  dtypes={"id": "int64", "value": "float64", "impression_id": "Int64", "position": "Int64"})


def latest_event_id(session: Session) -> int | None:
    """The largest feedback_events.id (the watermark of a model trained on everything now), None when empty."""
    return session.scalar(select(func.max(FeedbackEvent.id)))
