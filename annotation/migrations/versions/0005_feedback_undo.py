"""feedback_events.kind may be "undo": a visitor takes back their like or dislike of an item

The feedback log stays append-only: an undo is an event of its own, and the latest of an item's like / dislike /
undo events is its state (`annotation.reads.visitor_feedback`; retraining drops the likes and dislikes an undo took
back). The CHECK constraint on the kind is replaced: on SQLite by a batch copy of the table (no other table's
foreign key points at feedback_events), on PostgreSQL in place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BEFORE = ("click", "like", "dislike", "rating", "skip", "dwell")
_AFTER = (*_BEFORE, "undo")


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def _replace_check(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("feedback_events") as batch:
        batch.drop_constraint(op.f("ck_feedback_events_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_feedback_events_kind"), _kinds(kinds))


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    # the old constraint cannot hold them: the undos are deleted (their likes and dislikes count again)
    op.execute("DELETE FROM feedback_events WHERE kind = 'undo'")
    _replace_check(_BEFORE)
