"""console sessions: the project an admin's session works in

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("console_sessions", sa.Column("project_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("console_sessions", "project_id")
