"""The annotation schema (SQLAlchemy 2.0 typed ORM). Alembic migrations in `annotation/migrations` build it.

Tables, one line each:
    users              a person of the demo: an ml-100k user id ("196") or one made by onboarding (kind "new")
    annotators         a labeler (name, role annotator|admin)
    app_sessions       one browser session of the app (user and/or annotator, start, last seen)
    items              the item catalog, synced from the dataset so unknown item ids can be rejected
    impressions        one slate shown to a user: model (or two interleaved models), tab, query, context
    impression_items   the slate's items by position, with the model that contributed each position
    feedback_events    click | like | dislike | rating (1-5) | skip | dwell (ms) | undo (takes back the visitor's
                       like or dislike of the item), tied to a user, item, impression; append-only
    generated_assets   a cover or caption with its provenance (generator or "fallback", prompt, seed, ...)
    pair_tasks         two assets (or two slates) to compare, the unit of the labeling queue
    pair_assignments   which annotator was handed which pair, until when, and whether they finished
    preference_labels  the choice A | B | tie | skip, append-only: a change or an undo adds a row, the old
                       row keeps `is_current = False` (the history)
    gold_pairs         pairs with a known answer (given, or settled by agreement): mixed into the queue, never
                       shown as such, to measure each annotator's reliability
    studies            a labeling study: name, guidelines, pair source, labels per annotator, gold rate, the
                       completion code; reached by a link
    study_participants who joined a study by its link (their external participant id, e.g. Prolific's PID)
    eval_runs          offline metrics of one model on one dataset split (and of which registered version)
    model_versions     the model registry: every trained version (artifact, data watermark, metrics, gate
                       decision and why); the promoted one is served

Conventions: every client-originated row carries `event_id`, a client-generated UUID (unique), so a retried
write is a no-op; every time is naive UTC; external ids (user, item) are strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "User",
    "Annotator",
    "AppSession",
    "Item",
    "Impression",
    "ImpressionItem",
    "FeedbackEvent",
    "GeneratedAsset",
    "PairTask",
    "PairAssignment",
    "PreferenceLabel",
    "GoldPair",
    "Study",
    "StudyParticipant",
    "EvalRun",
    "ModelVersion",
    "utcnow",
    "USER_KINDS",
    "ROLES",
    "FEEDBACK_KINDS",
    "ASSET_KINDS",
    "PAIR_KINDS",
    "CHOICES",
    "VERSION_KINDS",
    "DECISIONS",
    "GOLD_ANSWERS",
    "GOLD_SOURCES",
    "PAIR_SOURCES",
]

USER_KINDS = ("dataset", "new")
ROLES = ("annotator", "admin")
# "undo": the visitor took back their like or dislike of the item (the log stays append-only; the latest of an
# item's like / dislike / undo is its state: `annotation.reads.visitor_feedback`)
FEEDBACK_KINDS = ("click", "like", "dislike", "rating", "skip", "dwell", "undo")
ASSET_KINDS = ("cover", "caption")
PAIR_KINDS = ("cover", "caption", "slate")
CHOICES = ("A", "B", "tie", "skip")
VERSION_KINDS = ("recommender", "preference")
DECISIONS = ("promoted", "rejected")
GOLD_ANSWERS = ("A", "B")
GOLD_SOURCES = ("known", "agreement")  # given by whoever made the pair, or settled by the labels' agreement
PAIR_SOURCES = ("any", "cover", "caption", "slate", "own")  # a study's pairs: the queue's (of one kind) or its own

# Length limits, enforced by the store before writing (with a clear error) and by the column types.
ID_LEN = 64  # user and item ids
EVENT_ID_LEN = 36  # canonical UUID text
NAME_LEN = 80  # annotator names
MODEL_LEN = 256  # model / generator ids (hub ids can be long)
QUERY_LEN = 512
TITLE_LEN = 512
PATH_LEN = 1024
HASH_LEN = 128

# Deterministic constraint names, so that migrations can refer to them on every engine.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity for the big tables.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> dt.datetime:
    """Now, as the naive UTC datetime every table stores."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("kind", USER_KINDS), name="kind"),)

    user_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "dataset" (ml-100k id) or "new" (created by onboarding)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Annotator(Base):
    __tablename__ = "annotators"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # sha256 (hex) of the secret token handed to the annotator at their first sign-in, which later sign-ins must
    # give; None until then (or for a sign-in that proves itself otherwise, such as Hugging Face OAuth)
    token_hash: Mapped[Optional[str]] = mapped_column(String(64))
    # migration 0006: the reliability last estimated from gold pairs and overlaps (`annotation.quality`: the
    # probability of choosing the better side), the labels behind it, and whether it fell below the threshold
    # (a flagged annotator is handed no more pairs). Derived state: recomputed, never shipped by the sink.
    reliability: Mapped[Optional[float]] = mapped_column(Float)
    reliability_labels: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AppSession(Base):
    __tablename__ = "app_sessions"

    id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), primary_key=True)  # client-generated UUID
    user_id: Mapped[Optional[str]] = mapped_column(ForeignKey("users.user_id"), index=True)
    annotator_id: Mapped[Optional[int]] = mapped_column(ForeignKey("annotators.id"), index=True)
    user_agent: Mapped[Optional[str]] = mapped_column(String(QUERY_LEN))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Item(Base):
    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_LEN))
    year: Mapped[Optional[int]] = mapped_column(Integer)
    genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    synced_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Impression(Base):
    __tablename__ = "impressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    session_id: Mapped[Optional[str]] = mapped_column(ForeignKey("app_sessions.id"))
    model: Mapped[str] = mapped_column(String(MODEL_LEN))  # the served model, or model A when interleaved
    model_b: Mapped[Optional[str]] = mapped_column(String(MODEL_LEN))  # model B of an interleaved pair
    tab: Mapped[Optional[str]] = mapped_column(String(32))
    query: Mapped[Optional[str]] = mapped_column(String(QUERY_LEN))
    context: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    n_items: Mapped[int] = mapped_column(Integer, server_default="0")  # items on the slate
    n_items_b: Mapped[int] = mapped_column(Integer, server_default="0")  # of those, placed by model B

    items: Mapped[list["ImpressionItem"]] = relationship(
        back_populates="impression", order_by="ImpressionItem.position", cascade="all, delete-orphan",
        lazy="selectin",  # loaded with the impression: rows the store returns stay readable after the session
    )

    @property
    def item_ids(self) -> list[str]:
        return [row.item_id for row in self.items]

    @property
    def contributors(self) -> list[str] | None:
        return [row.contributor for row in self.items] if self.model_b is not None else None


class ImpressionItem(Base):
    __tablename__ = "impression_items"

    impression_id: Mapped[int] = mapped_column(ForeignKey("impressions.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based rank on the slate
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), index=True)
    contributor: Mapped[Optional[str]] = mapped_column(String(MODEL_LEN))  # interleaving: who placed it

    impression: Mapped[Impression] = relationship(back_populates="items")


class FeedbackEvent(Base):
    __tablename__ = "feedback_events"
    __table_args__ = (
        CheckConstraint(_in("kind", FEEDBACK_KINDS), name="kind"),
        Index("ix_feedback_events_kind_created_at", "kind", "created_at"),
        Index("ix_feedback_events_model_kind", "model", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), index=True)
    impression_id: Mapped[Optional[int]] = mapped_column(ForeignKey("impressions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Optional[float]] = mapped_column(Float)  # rating 1-5, dwell milliseconds, else None
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # Copied from the impression when there is one (migration 0002), so dashboards need no join over slates:
    model: Mapped[Optional[str]] = mapped_column(String(MODEL_LEN))  # credited model: contributor, else slate's
    position: Mapped[Optional[int]] = mapped_column(Integer)  # the item's 0-based rank on that slate


class GeneratedAsset(Base):
    __tablename__ = "generated_assets"
    __table_args__ = (
        CheckConstraint(_in("kind", ASSET_KINDS), name="kind"),
        CheckConstraint("path IS NOT NULL OR text IS NOT NULL", name="payload"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str] = mapped_column(ForeignKey("items.item_id"), index=True)
    user_id: Mapped[Optional[str]] = mapped_column(ForeignKey("users.user_id"), index=True)  # None = generic
    generator: Mapped[str] = mapped_column(String(MODEL_LEN))  # model id, or "fallback"
    fallback: Mapped[bool] = mapped_column(Boolean)
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[Optional[str]] = mapped_column(Text)
    seed: Mapped[Optional[int]] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[Optional[str]] = mapped_column(String(PATH_LEN))  # covers: the image file
    text: Mapped[Optional[str]] = mapped_column(Text)  # captions: the text
    content_hash: Mapped[str] = mapped_column(String(HASH_LEN), index=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    personalized: Mapped[bool] = mapped_column(Boolean)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class PairTask(Base):
    __tablename__ = "pair_tasks"
    __table_args__ = (
        CheckConstraint(_in("kind", PAIR_KINDS), name="kind"),
        CheckConstraint(
            "(asset_a_id IS NOT NULL AND asset_b_id IS NOT NULL AND impression_a_id IS NULL AND impression_b_id IS NULL)"
            " OR (asset_a_id IS NULL AND asset_b_id IS NULL AND impression_a_id IS NOT NULL AND impression_b_id IS NOT NULL)",
            name="sides",
        ),
        CheckConstraint("slots_taken >= 0", name="slots"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_key: Mapped[str] = mapped_column(String(200), unique=True)  # kind:a:b:user, makes create_pair idempotent
    kind: Mapped[str] = mapped_column(String(16))  # cover | caption (two assets) or slate (two impressions)
    asset_a_id: Mapped[Optional[int]] = mapped_column(ForeignKey("generated_assets.id"), index=True)
    asset_b_id: Mapped[Optional[int]] = mapped_column(ForeignKey("generated_assets.id"), index=True)
    impression_a_id: Mapped[Optional[int]] = mapped_column(ForeignKey("impressions.id"))
    impression_b_id: Mapped[Optional[int]] = mapped_column(ForeignKey("impressions.id"))
    target_user_id: Mapped[Optional[str]] = mapped_column(ForeignKey("users.user_id"))  # whom it was made for
    # Assignments holding a slot: open ones plus finished non-skip ones. The queue hands a pair out only while
    # slots_taken < overlap, with a conditional UPDATE, so concurrent annotators never exceed the overlap.
    slots_taken: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # migration 0006. priority: the queue's ordering hint among pairs equally close to complete (higher first;
    # active pair selection sets it from the preference model, `queue.set_priorities`). study_id: the study
    # the pair was made for (None: the shared queue's); a plain indexed integer, SQLite cannot add a foreign key
    priority: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    study_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)

    asset_a: Mapped[Optional[GeneratedAsset]] = relationship(foreign_keys=[asset_a_id], lazy="selectin")
    asset_b: Mapped[Optional[GeneratedAsset]] = relationship(foreign_keys=[asset_b_id], lazy="selectin")
    impression_a: Mapped[Optional[Impression]] = relationship(foreign_keys=[impression_a_id], lazy="selectin")
    impression_b: Mapped[Optional[Impression]] = relationship(foreign_keys=[impression_b_id], lazy="selectin")


class PairAssignment(Base):
    __tablename__ = "pair_assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator_id", name="uq_pair_assignments_pair_annotator"),
        Index("ix_pair_assignments_open", "completed_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair_tasks.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)  # an unfinished lease frees its slot after this
    completed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    holds_slot: Mapped[bool] = mapped_column(Boolean, default=True)


class PreferenceLabel(Base):
    __tablename__ = "preference_labels"
    __table_args__ = (
        CheckConstraint(f"choice IS NULL OR {_in('choice', CHOICES)}", name="choice"),
        Index("ix_preference_labels_current", "annotator_id", "is_current"),
        Index("ix_preference_labels_pair", "pair_id", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), unique=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair_tasks.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    choice: Mapped[Optional[str]] = mapped_column(String(8))  # None: the label was cleared (undo)
    time_spent_ms: Mapped[Optional[int]] = mapped_column(Integer)
    guideline_version: Mapped[str] = mapped_column(String(32), default="v1")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)  # False once changed or cleared
    supersedes_id: Mapped[Optional[int]] = mapped_column(ForeignKey("preference_labels.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # migration 0006: the study the label was given in (None: outside any study); a plain indexed integer
    study_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)

    pair: Mapped[PairTask] = relationship(lazy="selectin")


class GoldPair(Base):
    """A pair whose better side is known: given ("known") or settled by agreement. The queue mixes gold pairs in
    at a rate, handed like any other pair (never marked), and the labels on them measure the annotator."""

    __tablename__ = "gold_pairs"
    __table_args__ = (
        CheckConstraint(_in("answer", GOLD_ANSWERS), name="answer"),
        CheckConstraint(_in("source", GOLD_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair_tasks.id"), unique=True)
    answer: Mapped[str] = mapped_column(String(8))  # A | B: the side that is better
    source: Mapped[str] = mapped_column(String(16))  # known | agreement
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Study(Base):
    """A labeling study, reached by a link carrying its `key` (and the participant's external id)."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("pair_source", PAIR_SOURCES), name="pair_source"),
        CheckConstraint("labels_per_annotator >= 1", name="quota"),
        CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)  # the link's ?study= value: random, unguessable
    name: Mapped[str] = mapped_column(String(TITLE_LEN))
    guidelines: Mapped[str] = mapped_column(Text)
    pair_source: Mapped[str] = mapped_column(String(16))  # PAIR_SOURCES: any | cover | caption | slate | own
    labels_per_annotator: Mapped[int] = mapped_column(Integer)  # each participant's quota
    gold_rate: Mapped[float] = mapped_column(Float)  # share of a participant's pairs that are gold pairs
    completion_code: Mapped[str] = mapped_column(String(32))  # shown once the quota is done
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class StudyParticipant(Base):
    """Someone who arrived by a study's link: the annotator they label as, and the external id they came with."""

    __tablename__ = "study_participants"
    __table_args__ = (
        UniqueConstraint("study_id", "external_id", name="uq_study_participants_study_external"),
        UniqueConstraint("study_id", "annotator_id", name="uq_study_participants_study_annotator"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(ID_LEN))  # e.g. Prolific's PROLIFIC_PID
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class EvalRun(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_model_dataset", "model", "dataset", "split"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_LEN))
    dataset: Mapped[str] = mapped_column(String(MODEL_LEN))
    split: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"recall@10": 0.21, "ndcg@10": 0.12, ...}
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # hyper-parameters, seed, ...
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # model_versions.id of the evaluated version (migration 0003); None for runs of no registered version.
    # No foreign key: SQLite cannot add one to an existing table without rebuilding it.
    model_version_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)


class ModelVersion(Base):
    """One trained version of a model. At most one version per (name, kind) has `promoted` set: the served one."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "kind", "version", name="uq_model_versions_name_kind_version"),
        CheckConstraint(_in("kind", VERSION_KINDS), name="kind"),
        CheckConstraint(f"decision IS NULL OR {_in('decision', DECISIONS)}", name="decision"),
        Index("ix_model_versions_served", "name", "kind", "promoted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MODEL_LEN))  # the model's name, e.g. "ease"
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per (name, kind)
    kind: Mapped[str] = mapped_column(String(16))  # recommender | preference
    artifact: Mapped[str] = mapped_column(String(PATH_LEN))  # where the saved model is: a blob key or a path
    watermark: Mapped[Optional[int]] = mapped_column(BigInteger)  # last feedback_events.id trained on (None: none)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # its evaluations, and the served one's
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # params, training rows, seconds, ...
    decision: Mapped[Optional[str]] = mapped_column(String(16))  # promoted | rejected (None: not gated yet)
    reason: Mapped[Optional[str]] = mapped_column(Text)  # why, in words
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)  # served now
    promoted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)  # last time it became the served one
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
