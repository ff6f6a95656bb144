"""Tables. Money is stored as integer nano-dollars (1e-9 USD): sums are exact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NANO = 1_000_000_000


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    budget_nano: Mapped[int | None] = mapped_column(BigInteger)
    budget_period: Mapped[str] = mapped_column(String(16), default="month")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(256), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateWindow(Base):
    """Fixed one-minute windows, counted with atomic upserts (shared by all processes)."""

    __tablename__ = "rate_windows"
    scope: Mapped[str] = mapped_column(String(96), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class Spend(Base):
    """Per project and budget period: what was charged and what is reserved in flight."""

    __tablename__ = "spend"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    spent_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nano: Mapped[int] = mapped_column(BigInteger, default=0)


class Reservation(Base):
    __tablename__ = "reservations"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    amount_nano: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Usage(Base):
    """One row per request, written in the transaction that settles it."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_created", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    org_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(32))
    # A batch line's row has endpoint "batch" (its price point); this names the endpoint
    # the line ran (chat, completions, embeddings, responses). Null outside batches.
    batch_endpoint: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))


class IdempotentResponse(Base):
    __tablename__ = "idempotency"
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class StoredFile(Base):
    """An uploaded file; its bytes live under ``<data_dir>/files/<id>``."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FineTuningJob(Base):
    """A fine-tuning job; every state transition is a committed update of ``status``."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_ft_jobs_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))  # the base snapshot
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64))
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(24), index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512))
    adapter_path: Mapped[str | None] = mapped_column(Text)
    base_path: Mapped[str] = mapped_column(Text)  # the base's weights (a GGUF)
    model_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    estimated_finish: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class FineTuningEvent(Base):
    __tablename__ = "fine_tuning_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    level: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, object] | None] = mapped_column(JSON)


class FineTuningCheckpoint(Base):
    __tablename__ = "fine_tuning_checkpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, object]] = mapped_column(JSON)


class EvalRow(Base):
    """An eval's definition, as validated when it was created."""

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    data_source_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    testing_criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    meta: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvalRunRow(Base):
    """One run of an eval; counts and usage are updated as its items finish."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_eval_created", "eval_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    data_source: Mapped[dict[str, Any]] = mapped_column(JSON)  # as given, for display
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # the rows, resolved
    principal: Mapped[dict[str, Any]] = mapped_column(JSON)  # who is billed
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    result_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    per_criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    per_model_usage: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvalOutputItemRow(Base):
    __tablename__ = "eval_output_items"
    __table_args__ = (UniqueConstraint("run_id", "datasource_item_id"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    eval_id: Mapped[str] = mapped_column(String(64))
    datasource_item_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))
    datasource_item: Mapped[dict[str, Any]] = mapped_column(JSON)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sample: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AliasPinRow(Base):
    """An alias moved by an operator (``corral models promote``), ahead of the catalog's
    dates; every server sharing the database follows it."""

    __tablename__ = "alias_pins"
    alias: Mapped[str] = mapped_column(String(256), primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(256))
    previous: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    pinned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoredResponse(Base):
    """A Responses API response kept for ``previous_response_id``, retrieval and its input
    items (``store: true``, OpenAI's default). ``scope``: the project that made it."""

    __tablename__ = "responses"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    # This response's own input items, and every item the model saw before its output
    # (the previous responses' inputs and outputs, then these).
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # A background response runs in the process that took it: that process (``worker``)
    # beats while it runs, so a reader can tell one that stopped from one still running.
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConversationRow(Base):
    """A Conversations API conversation: its items are kept in order; ``scope``: the
    project that made it."""

    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON)


class ConversationItemRow(Base):
    __tablename__ = "conversation_items"
    __table_args__ = (Index("ix_conversation_items_conversation", "conversation_id", "seq"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    item: Mapped[dict[str, Any]] = mapped_column(JSON)


class BatchRow(Base):
    """A batch of requests (the Batch API); counts and times change as its lines finish."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_scope_created", "scope", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))  # the project ("-": open mode, admin)
    principal: Mapped[dict[str, Any]] = mapped_column(JSON)  # who is billed
    status: Mapped[str] = mapped_column(String(16), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    meta: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    request_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    times: Mapped[dict[str, int]] = mapped_column(JSON)  # in_progress_at, completed_at …
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BatchLineRow(Base):
    """One finished request of a batch: its answer (or error), written as it finishes."""

    __tablename__ = "batch_lines"
    __table_args__ = (UniqueConstraint("batch_id", "line"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)  # 0-based, in the input file
    custom_id: Mapped[str] = mapped_column(String(512))
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the answer, or the error object


class ConsoleSessionRow(Base):
    """A console sign-in. ``id``: a SHA-256 of the cookie's token (a leaked table holds no
    usable session); ``key_hash``: the signed-in key's HMAC, as ``api_keys`` stores it, so
    a revoked key ends its sessions (``None``: open mode, no keys)."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str | None] = mapped_column(String(128))
    project_id: Mapped[str | None] = mapped_column(String(64))  # an admin working in one
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# Vector stores. Chunk text is indexed for keyword search outside the ORM (migration
# 0012): an FTS5 table kept by triggers on SQLite, a generated tsvector on PostgreSQL.
CHUNK_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite: the rowid FTS5 joins on


class VectorStoreRow(Base):
    """A vector store. ``chunks`` and ``revision`` change in the transaction that adds or
    removes chunks: the first bounds the store, the second keys the search caches."""

    __tablename__ = "vector_stores"
    __table_args__ = (Index("ix_vector_stores_scope_created", "scope", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    meta: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    expires_after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_active_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class VectorStoreFileRow(Base):
    """A file attached to a vector store; a job of the indexing worker while
    ``in_progress``. ``principal``: who is billed for its embeddings."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        UniqueConstraint("store_id", "file_id"),
        Index("ix_vector_store_files_store_created", "store_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"))
    file_id: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    last_error: Mapped[dict[str, str] | None] = mapped_column(JSON)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    chunking: Mapped[dict[str, int]] = mapped_column(JSON)
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    principal: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VectorStoreBatchRow(Base):
    """A file batch; its counts are its files'."""

    __tablename__ = "vector_store_file_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(
        ForeignKey("vector_stores.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VectorChunkRow(Base):
    """One chunk of a file in a store: its text and its embedding (float32, little-endian,
    unit length)."""

    __tablename__ = "vector_chunks"
    __table_args__ = (Index("ix_vector_chunks_store_file", "store_id", "file_id"),)
    id: Mapped[int] = mapped_column(CHUNK_ID, primary_key=True, autoincrement=True)
    store_id: Mapped[str] = mapped_column(String(64))
    file_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
