"""alias pins: operators' alias moves (corral models promote)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alias_pins",
        sa.Column("alias", sa.String(length=256), nullable=False),
        sa.Column("snapshot_id", sa.String(length=256), nullable=False),
        sa.Column("previous", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alias"),
    )


def downgrade() -> None:
    op.drop_table("alias_pins")
