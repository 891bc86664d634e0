"""labeling studies: studies, study_participants, gold_pairs; pair_tasks.priority and .study_id,
preference_labels.study_id; annotators.reliability, .reliability_labels and .flagged

A study (name, guidelines, pair source, labels per annotator, gold rate, completion code) is reached by a link;
who arrived by it, with their external participant id, is a study participant; the labels given in it and the
pairs made for it name it. Gold pairs (a known answer, or one settled by agreement) are mixed into the queue to
measure each annotator; their reliability, and whether it fell below the threshold, is kept on the annotator.
The queue orders waiting pairs by `priority` (active pair selection sets it). New columns on existing tables
are plain (indexed) integers without foreign keys: SQLite cannot add one without rebuilding the table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("annotators", sa.Column("reliability", sa.Float(), nullable=True))
    op.add_column("annotators", sa.Column("reliability_labels", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("annotators", sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("pair_tasks", sa.Column("priority", sa.Float(), nullable=False, server_default="0"))
    op.add_column("pair_tasks", sa.Column("study_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_pair_tasks_study_id"), "pair_tasks", ["study_id"])
    op.add_column("preference_labels", sa.Column("study_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_preference_labels_study_id"), "preference_labels", ["study_id"])
    op.create_table(
        "gold_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("answer", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("answer IN ('A', 'B')", name=op.f("ck_gold_pairs_answer")),
        sa.CheckConstraint("source IN ('known', 'agreement')", name=op.f("ck_gold_pairs_source")),
        sa.ForeignKeyConstraint(["pair_id"], ["pair_tasks.id"], name=op.f("fk_gold_pairs_pair_id_pair_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_pairs")),
        sa.UniqueConstraint("pair_id", name=op.f("uq_gold_pairs_pair_id")),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("guidelines", sa.Text(), nullable=False),
        sa.Column("pair_source", sa.String(length=16), nullable=False),
        sa.Column("labels_per_annotator", sa.Integer(), nullable=False),
        sa.Column("gold_rate", sa.Float(), nullable=False),
        sa.Column("completion_code", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("pair_source IN ('any', 'cover', 'caption', 'slate', 'own')",
                           name=op.f("ck_studies_pair_source")),
        sa.CheckConstraint("labels_per_annotator >= 1", name=op.f("ck_studies_quota")),
        sa.CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name=op.f("ck_studies_gold_rate")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("key", name=op.f("uq_studies_key")),
    )
    op.create_table(
        "study_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"],
                                name=op.f("fk_study_participants_annotator_id_annotators")),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_study_participants_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_participants")),
        sa.UniqueConstraint("study_id", "annotator_id", name="uq_study_participants_study_annotator"),
        sa.UniqueConstraint("study_id", "external_id", name="uq_study_participants_study_external"),
    )
    op.create_index(op.f("ix_study_participants_annotator_id"), "study_participants", ["annotator_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_study_participants_annotator_id"), table_name="study_participants")
    op.drop_table("study_participants")
    op.drop_table("studies")
    op.drop_table("gold_pairs")
    op.drop_index(op.f("ix_preference_labels_study_id"), table_name="preference_labels")
    op.drop_column("preference_labels", "study_id")
    op.drop_index(op.f("ix_pair_tasks_study_id"), table_name="pair_tasks")
    op.drop_column("pair_tasks", "study_id")
    op.drop_column("pair_tasks", "priority")
    op.drop_column("annotators", "flagged")
    op.drop_column("annotators", "reliability_labels")
    op.drop_column("annotators", "reliability")
