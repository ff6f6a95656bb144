"""conversations: the Conversations API (conversations and their items, in order)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 21:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_conversations_scope", "conversations", ["scope"])
    op.create_table(
        "conversation_items",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("item", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_index(
        "ix_conversation_items_conversation", "conversation_items", ["conversation_id", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_items_conversation", table_name="conversation_items")
    op.drop_table("conversation_items")
    op.drop_index("ix_conversations_scope", table_name="conversations")
    op.drop_table("conversations")
