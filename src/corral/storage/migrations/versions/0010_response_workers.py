"""responses: the process running a background response, and its heartbeat

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("responses", sa.Column("worker", sa.String(length=64), nullable=True))
    op.add_column("responses", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("responses", "heartbeat_at")
    op.drop_column("responses", "worker")
