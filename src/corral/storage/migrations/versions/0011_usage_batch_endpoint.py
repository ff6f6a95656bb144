"""usage: the endpoint a batch line ran (its row's endpoint is the batch price point)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage", sa.Column("batch_endpoint", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("usage", "batch_endpoint")
