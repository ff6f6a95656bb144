"""vector stores: stores, their files and file batches, chunks with embeddings, and the
keyword index of the chunks (FTS5 on SQLite, a tsvector column with GIN on PostgreSQL)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# External-content FTS5: the text lives once, in vector_chunks; the triggers keep the
# index in step with every insert and delete (chunks are never updated).
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE vector_chunks_fts USING fts5("
    "text, content='vector_chunks', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER vector_chunks_ai AFTER INSERT ON vector_chunks BEGIN "
    "INSERT INTO vector_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER vector_chunks_ad AFTER DELETE ON vector_chunks BEGIN "
    "INSERT INTO vector_chunks_fts(vector_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
)
POSTGRES_FTS = (
    "ALTER TABLE vector_chunks ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX ix_vector_chunks_tsv ON vector_chunks USING GIN (tsv)",
)


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("expires_after", sa.JSON(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vector_stores_scope_created", "vector_stores", ["scope", "created_at"])
    op.create_table(
        "vector_store_files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("chunking", sa.JSON(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["vector_stores.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store_id", "file_id"),
    )
    op.create_index(
        "ix_vector_store_files_store_created", "vector_store_files", ["store_id", "created_at"]
    )
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status"])
    op.create_index("ix_vector_store_files_batch_id", "vector_store_files", ["batch_id"])
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["vector_stores.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_vector_store_file_batches_store_id", "vector_store_file_batches", ["store_id"]
    )
    op.create_table(
        "vector_chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vector_chunks_store_file", "vector_chunks", ["store_id", "file_id"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_FTS if sqlite else POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE vector_chunks_fts")
    op.drop_table("vector_chunks")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_store_files")
    op.drop_table("vector_stores")
