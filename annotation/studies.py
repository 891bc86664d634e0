"""Labeling studies: a study (name, guidelines, pair source, labels per annotator, gold rate) reached by a link,
its participants (who arrived by the link, with an external participant id such as Prolific's PID), their quota
and progress, and the study's figures.

    study = create_study(s, "Covers, round 1", "Pick the cover that suits the person better.", pair_source="cover",
                         labels_per_annotator=20, gold_rate=0.1)
    join_study(s, study.key, annotator_id, "5f1c...")     # idempotent: the same participant again is the same row
    study_progress(s, study.id, annotator_id)              # (done, quota)
    queue.next_pair(s, annotator_id, **pair_options(study))  # the study's pairs, its gold rate
    queue.record_preference(s, ..., study_id=study.id)     # the label names the study

Every function takes `session` first and never commits, as `annotation.store` does. The key (the link's
`?study=` value) and the completion code are random (`secrets`) unless given.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation import _validate as v
from annotation.errors import InvalidInputError, UnknownStudyError
from annotation.models import (
    ID_LEN,
    PAIR_SOURCES,
    TITLE_LEN,
    Annotator,
    PreferenceLabel,
    Study,
    StudyParticipant,
    utcnow,
)
from annotation.store import _MAX_INT, _insert_once, _require_annotator

__all__ = ["create_study", "get_study", "study_by_id", "all_studies", "join_study", "participant", "study_progress", "pair_options",
           "studies_frame", "participants_frame", "GUIDELINES_MAX", "QUOTA_MAX", "COUNTED_CHOICES"]

GUIDELINES_MAX = 20_000  # characters of a study's guidelines
QUOTA_MAX = 10_000  # labels per participant
COUNTED_CHOICES = ("A", "B", "tie")  # what counts towards a participant's quota (a skip does not)
KEY_CHARS = 16  # characters of a generated study key (96 random bits)


def create_study(session: Session, name: str, guidelines: str, pair_source: str = "any",
                 labels_per_annotator: int = 20, gold_rate: float = 0.1, key: str | None = None,
                 completion_code: str | None = None, at: dt.datetime | None = None) -> Study:
    """A new study. pair_source: "any" (the shared queue's pairs), "cover" | "caption" | "slate" (the shared
    queue's pairs of that kind) or "own" (only pairs made for this study, `queue.create_pair(study_id=...)`).
    labels_per_annotator: each participant's quota. gold_rate: the share of a participant's pairs that are gold
    pairs (0 to 1). key, completion_code: random when not given; a key already in use is refused."""
    name = v.text(name, "name", TITLE_LEN)
    guidelines = v.text(guidelines, "guidelines", GUIDELINES_MAX, allow_empty=True)
    pair_source = v.choice(pair_source, "pair_source", PAIR_SOURCES)
    labels_per_annotator = v.integer(labels_per_annotator, "labels_per_annotator", 1, QUOTA_MAX)
    gold_rate = v.number(gold_rate, "gold_rate", 0.0, 1.0)
    key = v.text(key, "key", 32, optional=True) or secrets.token_urlsafe(12)[:KEY_CHARS]
    if not key.replace("-", "").replace("_", "").isalnum():
        raise InvalidInputError(f"key must be letters, digits, '-' or '_' (it goes in a link), got {key!r}")
    completion_code = (v.text(completion_code, "completion_code", 32, optional=True)
                       or secrets.token_hex(4).upper())
    at = v.timestamp(at) or utcnow()
    new_id = _insert_once(session, Study, {
        "key": key, "name": name, "guidelines": guidelines, "pair_source": pair_source,
        "labels_per_annotator": labels_per_annotator, "gold_rate": gold_rate, "completion_code": completion_code,
        "created_at": at}, conflict=("key",))
    if new_id is None:
        raise InvalidInputError(f"key {key!r} is already the key of another study")
    return session.get(Study, new_id)


def get_study(session: Session, key: Any) -> Study:
    """The study whose link carries `key`; `UnknownStudyError` when there is none."""
    key = v.text(key, "study", 32)
    study = session.scalars(select(Study).where(Study.key == key)).one_or_none()
    if study is None:
        raise UnknownStudyError(f"study {key!r} does not exist: check the link")
    return study


def study_by_id(session: Session, study_id: Any) -> Study:
    study_id = v.integer(study_id, "study_id", 1, _MAX_INT)
    study = session.get(Study, study_id)
    if study is None:
        raise UnknownStudyError(f"study_id {study_id} does not exist")
    return study


def all_studies(session: Session) -> list[Study]:
    """Every study, oldest first (by id)."""
    return list(session.scalars(select(Study).order_by(Study.id)))


def join_study(session: Session, key: Any, annotator_id: int, external_id: Any,
               at: dt.datetime | None = None) -> StudyParticipant:
    """Record that `annotator_id` arrived by the study's link as the participant `external_id`; idempotent. An
    external id already taken by another annotator in this study, or an annotator already in it under another
    external id, is refused."""
    study = get_study(session, key)
    annotator = _require_annotator(session, annotator_id)
    external_id = v.text(external_id, "external_id", ID_LEN)
    at = v.timestamp(at) or utcnow()
    _insert_once(session, StudyParticipant, {"study_id": study.id, "annotator_id": annotator.id,
                                             "external_id": external_id, "started_at": at},
                 conflict=("study_id", "external_id"), returning=False)
    row = session.scalars(select(StudyParticipant).where(StudyParticipant.study_id == study.id,
                                                         StudyParticipant.external_id == external_id)).one_or_none()
    if row is None or row.annotator_id != annotator.id:
        raise InvalidInputError(f"external_id {external_id!r} already joined study {study.key!r} as someone else")
    return row


def participant(session: Session, study_id: int, annotator_id: int) -> StudyParticipant | None:
    """The annotator's participation in the study, or None."""
    return session.scalars(select(StudyParticipant).where(StudyParticipant.study_id == study_id,
                                                          StudyParticipant.annotator_id == annotator_id)
                           ).one_or_none()


def study_progress(session: Session, study_id: int, annotator_id: int) -> tuple[int, int]:
    """(done, quota): the annotator's current A / B / tie labels given in the study, and its quota."""
    study = study_by_id(session, study_id)
    annotator = _require_annotator(session, annotator_id)
    done = session.scalar(select(func.count()).select_from(PreferenceLabel).where(
        PreferenceLabel.study_id == study.id, PreferenceLabel.annotator_id == annotator.id,
        PreferenceLabel.is_current.is_(True), PreferenceLabel.choice.in_(COUNTED_CHOICES))) or 0
    return int(done), int(study.labels_per_annotator)


def pair_options(study: Study) -> dict[str, Any]:
    """`queue.next_pair` keyword arguments for a participant of `study`: its pairs (kind or own), its gold rate
    and its key (which keys the gold turns)."""
    kind = study.pair_source if study.pair_source in ("cover", "caption", "slate") else None
    return {"kind": kind, "pairs_of": study.id if study.pair_source == "own" else None,
            "gold_rate": float(study.gold_rate), "gold_key": study.key}


def studies_frame(session: Session) -> pd.DataFrame:
    """One row per study: study_id, key, name, pair_source, labels_per_annotator, gold_rate, created_at,
    participants, completed (participants at their quota), labels (current A / B / tie labels given in it)."""
    rows = session.execute(select(Study).order_by(Study.created_at, Study.id)).scalars().all()
    counts = dict(session.execute(
        select(PreferenceLabel.study_id, func.count()).where(PreferenceLabel.study_id.is_not(None),
                                                             PreferenceLabel.is_current.is_(True),
                                                             PreferenceLabel.choice.in_(COUNTED_CHOICES))
        .group_by(PreferenceLabel.study_id)).all())
    people = participants_frame(session)
    out = []
    for st in rows:
        mine = people[people["study_id"] == st.id]
        out.append({"study_id": st.id, "key": st.key, "name": st.name, "pair_source": st.pair_source,
                    "labels_per_annotator": st.labels_per_annotator, "gold_rate": st.gold_rate,
                    "created_at": st.created_at, "participants": len(mine),
                    "completed": int(mine["completed"].sum()) if len(mine) else 0,
                    "labels": int(counts.get(st.id, 0))})
    columns = ["study_id", "key", "name", "pair_source", "labels_per_annotator", "gold_rate", "created_at",
               "participants", "completed", "labels"]
    return pd.DataFrame(out, columns=columns)


def participants_frame(session: Session, study_id: int | None = None) -> pd.DataFrame:
    """One row per participant: study_id, annotator_id, annotator, external_id, started_at, labels (current A / B /
    tie labels in the study), quota, completed, median_ms (median time per label), last_label_at, reliability,
    flagged."""
    p = StudyParticipant
    statement = (select(p.study_id, p.annotator_id, Annotator.name, p.external_id, p.started_at,
                        Study.labels_per_annotator, Annotator.reliability, Annotator.flagged)
                 .join(Annotator, Annotator.id == p.annotator_id).join(Study, Study.id == p.study_id)
                 .order_by(p.study_id, p.started_at, p.id))
    if study_id is not None:
        statement = statement.where(p.study_id == v.integer(study_id, "study_id", 1, _MAX_INT))
    people = pd.DataFrame(session.execute(statement).all(),
                          columns=["study_id", "annotator_id", "annotator", "external_id", "started_at", "quota",
                                   "reliability", "flagged"])
    labels = pd.DataFrame(session.execute(
        select(PreferenceLabel.study_id, PreferenceLabel.annotator_id, PreferenceLabel.time_spent_ms,
               PreferenceLabel.created_at)
        .where(PreferenceLabel.study_id.is_not(None), PreferenceLabel.is_current.is_(True),
               PreferenceLabel.choice.in_(COUNTED_CHOICES))).all(),
        columns=["study_id", "annotator_id", "time_spent_ms", "created_at"])
    stats = labels.groupby(["study_id", "annotator_id"]).agg(
        labels=("created_at", "size"), median_ms=("time_spent_ms", "median"), last_label_at=("created_at", "max"))
    people = people.join(stats, on=["study_id", "annotator_id"])
    people["labels"] = people["labels"].fillna(0).astype("int64")
    people["completed"] = people["labels"] >= people["quota"]
    people["flagged"] = people["flagged"].astype(bool)
    return people[["study_id", "annotator_id", "annotator", "external_id", "started_at", "labels", "quota",
                   "completed", "median_ms", "last_label_at", "reliability", "flagged"]]
