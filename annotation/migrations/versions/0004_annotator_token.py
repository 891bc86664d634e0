"""annotators.token_hash: the sha256 of each annotator's own secret token

A name could be signed in with by anyone who typed it (and knew the shared label password, if any). An annotator
now gets a secret token at their first sign-in; the store keeps its sha256, and later sign-ins must give the
token. Existing annotators have none until their next sign-in claims one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("annotators", sa.Column("token_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("annotators", "token_hash")
