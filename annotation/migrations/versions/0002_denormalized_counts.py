"""denormalize for dashboards over millions of events: feedback_events.model/position, impressions.n_items/n_items_b

Feedback about an item on a slate now carries the model credited for it (the contributor on an interleaved
slate, else the slate's model) and its position, and impressions carry how many items they showed (and how
many of those model B placed), so per-model rates are single-table GROUP BYs instead of joins over every
slate position. Existing rows are backfilled from impression_items.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ADD/DROP COLUMN (SQLite >= 3.35 has both): no batch copy-and-move, which would have to
# drop tables that other tables' foreign keys point at.


def upgrade() -> None:
    op.add_column("impressions", sa.Column("n_items", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("impressions", sa.Column("n_items_b", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("feedback_events", sa.Column("model", sa.String(length=256), nullable=True))
    op.add_column("feedback_events", sa.Column("position", sa.Integer(), nullable=True))
    op.create_index("ix_feedback_events_model_kind", "feedback_events", ["model", "kind"])
    op.execute(
        "UPDATE impressions SET "
        "n_items = (SELECT COUNT(*) FROM impression_items s WHERE s.impression_id = impressions.id), "
        "n_items_b = (SELECT COUNT(*) FROM impression_items s WHERE s.impression_id = impressions.id "
        "AND impressions.model_b IS NOT NULL AND s.contributor = impressions.model_b)"
    )
    op.execute(
        "UPDATE feedback_events SET "
        "position = (SELECT s.position FROM impression_items s WHERE s.impression_id = feedback_events.impression_id "
        "AND s.item_id = feedback_events.item_id), "
        "model = (SELECT COALESCE(s.contributor, i.model) FROM impression_items s JOIN impressions i "
        "ON i.id = s.impression_id WHERE s.impression_id = feedback_events.impression_id "
        "AND s.item_id = feedback_events.item_id) "
        "WHERE impression_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_events_model_kind", table_name="feedback_events")
    op.drop_column("feedback_events", "position")
    op.drop_column("feedback_events", "model")
    op.drop_column("impressions", "n_items_b")
    op.drop_column("impressions", "n_items")
