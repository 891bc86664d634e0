"""model registry: model_versions (artifact, data watermark, metrics, gate decision) and eval_runs.model_version_id

Every retrained model is a row of model_versions whether the gate promoted it or not, so the served version
can be rolled back to the one before and the dashboard can show each decision. eval_runs rows name the
version they evaluated (a plain indexed integer: SQLite cannot add a foreign key to an existing table).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("artifact", sa.String(length=1024), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('recommender', 'preference')", name=op.f("ck_model_versions_kind")),
        sa.CheckConstraint("decision IS NULL OR decision IN ('promoted', 'rejected')",
                           name=op.f("ck_model_versions_decision")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "kind", "version", name="uq_model_versions_name_kind_version"),
    )
    op.create_index(op.f("ix_model_versions_created_at"), "model_versions", ["created_at"])
    op.create_index("ix_model_versions_served", "model_versions", ["name", "kind", "promoted"])
    op.add_column("eval_runs", sa.Column("model_version_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_eval_runs_model_version_id"), "eval_runs", ["model_version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_eval_runs_model_version_id"), table_name="eval_runs")
    op.drop_column("eval_runs", "model_version_id")
    op.drop_index("ix_model_versions_served", table_name="model_versions")
    op.drop_index(op.f("ix_model_versions_created_at"), table_name="model_versions")
    op.drop_table("model_versions")
