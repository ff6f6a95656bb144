"""One settings tree for all of corral, read from ``CORRAL_*`` environment variables.

Nested groups use ``__`` as the delimiter: ``CORRAL_ENGINE__N_PARALLEL=4``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_MODEL_ID = "smollm2-135m-instruct"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("corral", appauthor=False))


def _default_threads() -> int:
    return max(1, os.cpu_count() or 1)


class EngineSettings(BaseModel):
    """The embedded llama.cpp engine."""

    isolation: Literal["process", "inline"] = Field(
        "process",
        description="`process`: each loaded model runs llama.cpp in a supervised child "
        "process (a crash fails its requests and restarts it, the API stays up); `inline`: "
        "llama.cpp runs inside the API process.",
    )
    n_ctx: int = Field(
        8192, ge=256, description="Total KV-cache size in tokens, shared by all slots."
    )
    n_parallel: int = Field(
        8, ge=1, le=256, description="Concurrent sequences (slots) decoded in one batch."
    )
    n_threads: int = Field(
        default_factory=_default_threads, ge=1, description="CPU threads for decoding."
    )
    n_batch: int = Field(2048, ge=32, description="Logical batch size for prompt processing.")
    n_ubatch: int = Field(512, ge=32, description="Physical batch size for prompt processing.")
    cache_ram_mib: int = Field(
        1024,
        ge=0,
        description="RAM for llama.cpp's prompt cache (MiB): the prompts of slots taken by "
        "other requests are kept here and restored to the next request that shares their "
        "prefix (an agent's instructions and tools, a second session). Bounds what it adds "
        "to resident memory, and counts in the engine's memory estimate; 0 turns it off.",
    )
    saved_prompts_mib: int = Field(
        1024,
        ge=0,
        description="Disk for the prompts the engine's slots hold when it closes (a "
        "shutdown, an unload), restored when it starts again with the same model and "
        "settings: an agent's instructions and tools survive a restart. 0: nothing saved.",
    )
    embeddings: bool = Field(True, description="Serve /v1/embeddings from the loaded model.")
    flash_attn: Literal["auto", "on", "off"] = Field(
        "auto",
        description="llama.cpp's flash attention: `auto` turns it on where the backend has "
        "it (the CPU has), `on` requires it, `off` uses the plain attention kernels. On "
        "the CPU `off` decodes 1.6-1.9x faster from ~8K tokens of depth but 0.8-0.9x at "
        "short contexts, prefills 1.25x slower and needs more memory "
        "(docs/benchmarks-long-context.md): a deployment of long agent sessions may "
        "gain from it.",
    )
    kv_cache_type: Literal["f16", "q8_0"] = Field(
        "f16",
        description="The type of the KV cache's keys and values: `q8_0` takes about half "
        "the memory of `f16` (a longer window in the same RAM) and needs flash attention "
        "(not `flash_attn: off`); on the CPU its prefill is ~3x slower.",
    )
    chat_template: str | None = Field(
        None,
        description="Operator's override of the GGUF's chat template (never taken from a request).",
    )
    max_workers: int = Field(
        64, ge=1, description="Threads that wait on the engine (one per in-flight request)."
    )
    speculative: Literal["ngram", "off"] = Field(
        "ngram",
        description="Draft-free speculative decoding: `ngram` drafts tokens by looking the "
        "last few tokens up in the prompt and the output so far, and llama.cpp verifies "
        "each draft in one batched step (greedy output is the model's own). It pays on one "
        "stream and on answers that repeat the prompt, and costs throughput when many "
        "streams share few cores (docs/benchmarks-speculative.md): `off` there.",
    )
    spec_ngram_size: int = Field(
        8, ge=1, le=32, description="Tokens looked up to find a draft (`ngram`)."
    )
    spec_draft_max: int = Field(
        8, ge=1, le=64, description="Most tokens drafted at once (`ngram`)."
    )

    @model_validator(mode="after")
    def _quantized_values_need_flash_attention(self) -> EngineSettings:
        # llama.cpp refuses a quantized V cache without flash attention at load time,
        # long after the setting was read: say it where the setting is.
        if self.kv_cache_type != "f16" and self.flash_attn == "off":
            raise ValueError("engine.kv_cache_type q8_0 needs flash attention (not `off`)")
        return self


class LimitSettings(BaseModel):
    """Bounds checked before any engine work starts."""

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_n: int = Field(8, ge=1, le=128, description="Largest `n` (choices per request).")
    max_messages: int = Field(2048, ge=1, description="Most messages in one chat request.")
    max_stop: int = Field(4, ge=1, description="Most stop sequences.")
    max_tools: int = Field(128, ge=1, description="Most tools in one request.")
    max_embedding_inputs: int = Field(2048, ge=1, description="Most inputs per embeddings call.")
    max_prompts: int = Field(64, ge=1, description="Most prompts per completions call.")
    max_in_flight: int = Field(
        64, ge=1, description="Requests admitted at once; more get 503 with retry-after."
    )
    body_idle_timeout_s: float = Field(
        15.0, gt=0, description="A request body that sends nothing this long is answered 408."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection whose request headers are not complete this long after it "
        "opened (or its request began) is answered 408 and closed (slow-header clients).",
    )
    stream_send_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A stream whose client reads nothing this long (the send buffer full) "
        "is cut; its generation stops.",
    )
    queue_per_slot: int | None = Field(
        3,
        ge=0,
        description="Requests that may wait for each engine slot of a model; past "
        "slots * (1 + this) a request gets 503 with retry-after at once. None: no bound.",
    )


class AccountSettings(BaseModel):
    """Budgets and usage bookkeeping."""

    reservation_ttl_s: int = Field(
        900, ge=10, description="A budget reservation not settled by then is released."
    )
    idempotency_ttl_s: int = Field(
        86400, ge=60, description="How long an Idempotency-Key's response is replayed."
    )


class LoadingSettings(BaseModel):
    """Loading catalog models on demand."""

    memory_budget_mib: int = Field(
        0,
        ge=0,
        description="Memory for loaded models (MiB); least recently used idle models are "
        "unloaded to fit. 0: 80% of physical memory.",
    )
    load_timeout_s: float = Field(
        120.0, gt=0, description="Longest a request waits for its model to load."
    )


class FileSettings(BaseModel):
    """Uploaded files (/v1/files)."""

    max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest file a client may upload (bytes)."
    )
    dir: Path | None = Field(
        None,
        description="Where uploaded files' bytes are kept (default: `<data_dir>/files`). "
        "Replicas sharing a database must share it too (a shared volume): a file uploaded "
        "to one replica is read by another's batch, eval or fine-tuning worker.",
    )


class EvalSettings(BaseModel):
    """Eval runs, executed by a worker task in each API process."""

    concurrency: int = Field(
        4, ge=1, le=64, description="Items of one run sampled and graded at once."
    )
    max_items: int = Field(5000, ge=1, description="Most data items in one eval run.")
    poll_s: float = Field(
        2.0, gt=0, description="How often the worker looks for queued runs from other replicas."
    )
    embedding_model: str | None = Field(
        None, description="Model for `cosine` text_similarity graders (default: `model`)."
    )
    python_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Wall-clock limit of one sandboxed `python` grader."
    )
    python_cpu_s: int = Field(
        5, ge=1, le=300, description="CPU-time limit of one sandboxed `python` grader."
    )
    python_memory_mib: int = Field(
        512, ge=64, description="Address-space limit of one sandboxed `python` grader."
    )


class ResponsesSettings(BaseModel):
    """The Responses API."""

    refuse_hosted_tools: bool = Field(
        False,
        description="Answer 400 to server-hosted tool types corral cannot run (web_search, "
        "code_interpreter, mcp …) instead of leaving them out and naming them in a header.",
    )
    background_heartbeat_s: float = Field(
        10.0,
        gt=0,
        description="How often the process running a background response marks it alive. "
        "One whose mark is three of these old is read as failed: its process stopped.",
    )


class BatchSettings(BaseModel):
    """The Batch API, executed by a worker task in each API process, behind interactive
    requests."""

    max_lines: int = Field(50_000, ge=1, description="Most requests in one batch's file.")
    concurrency: int = Field(
        1,
        ge=1,
        le=256,
        description="Most requests of batches this process runs at once while interactive "
        "requests are in flight or were within `quiet_s`: the batches' bounded share of a "
        "busy engine. Requests past it are handed back (cancelled and run again later).",
    )
    idle_concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Most requests of batches this process runs at once while no "
        "interactive traffic is seen; default: `slots` (the whole engine).",
    )
    quiet_s: float = Field(
        3.0,
        ge=0,
        description="How long after the last interactive request batches keep to "
        "`concurrency` before filling the engine again.",
    )
    slots: int | None = Field(
        None,
        ge=1,
        description="A batch request starts only while fewer requests than this are in "
        "flight (interactive ones first); default: the engine's `n_parallel`.",
    )
    window_s: int | None = Field(
        None,
        ge=1,
        description="The completion window in seconds, instead of the `24h` a batch asks "
        "for (for tests and short-lived deployments).",
    )
    poll_s: float = Field(
        2.0, gt=0, description="How often the worker looks for batches from other replicas."
    )
    stale_after_s: float = Field(
        60.0, gt=0, description="A batch whose worker's heartbeat is this old is requeued."
    )


class VectorStoreSettings(BaseModel):
    """Vector stores (/v1/vector_stores): files parsed, chunked and embedded by a worker
    task in each API process; searched by keyword and by vector, fused by rank."""

    embedding_model: str | None = Field(
        None, description="Model whose embeddings index and search stores (default: `model`)."
    )
    max_files_per_store: int = Field(
        10_000, ge=1, description="Most files attached to one vector store."
    )
    max_store_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024,
        description="Most bytes of attached files in one vector store (the files' sizes).",
    )
    max_chunks_per_store: int = Field(
        100_000,
        ge=1,
        description="Most chunks in one vector store; a file that would pass it fails before "
        "it is embedded. Bounds the in-memory vector search (chunks x dimensions x 4 bytes).",
    )
    max_text_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Most bytes of text one file may give once parsed (a PDF's, say).",
    )
    max_file_chunks: int = Field(
        20_000, ge=1, description="Most chunks one file may make (checked before embedding)."
    )
    max_batch_files: int = Field(2000, ge=1, description="Most files in one file batch.")
    max_query_chars: int = Field(
        4096, ge=1, description="Longest search query (characters, each query of a list)."
    )
    max_queries: int = Field(10, ge=1, le=100, description="Most queries in one search.")
    embed_batch: int = Field(
        32, ge=1, le=2048, description="Texts embedded per call while a file is indexed."
    )
    candidates: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Results taken from each of keyword and vector search before fusion.",
    )
    rrf_k: int = Field(
        60, ge=1, description="The constant of reciprocal rank fusion: 1 / (k + rank)."
    )
    cache_mib: int = Field(
        512,
        ge=0,
        description="Memory for stores' vector matrices kept between searches (least "
        "recently used go first); 0 reads them from the database at every search.",
    )
    poll_s: float = Field(
        2.0, gt=0, description="How often the worker looks for files from other replicas."
    )
    stale_after_s: float = Field(
        60.0,
        gt=0,
        description="A file whose worker has not marked it alive for this long is taken up "
        "by another worker.",
    )


class MessagesSettings(BaseModel):
    """Anthropic's Messages API."""

    refuse_server_tools: bool = Field(
        False,
        description="Answer 400 to Anthropic-defined tool types corral cannot run "
        "(web_search_20250305, code_execution, bash …) instead of leaving them out and "
        "naming them in a header.",
    )


class McpSettings(BaseModel):
    """Remote MCP servers: the `mcp` tool of Responses and Messages' `mcp_servers`."""

    allowed_urls: str = Field(
        "",
        description="Comma-separated URL prefixes of the MCP servers a request may name "
        "(e.g. `http://127.0.0.1:9000/`): scheme, host and port must match and the path "
        "must start with the prefix's. Empty (the default): no request may make corral "
        "connect to an MCP server, and `mcp` tools are a 400.",
    )
    timeout_s: float = Field(
        30.0, gt=0, description="One MCP operation (connect, list tools, one call) at most."
    )
    max_response_bytes: int = Field(
        1 << 20, ge=1024, description="Bytes one MCP server's answer may take; more is cut off."
    )
    max_calls: int = Field(
        8, ge=1, le=64, description="MCP tool calls one response may make before it answers."
    )
    max_tools: int = Field(
        64, ge=1, description="Tools one MCP server may list (more: the listing fails)."
    )

    @property
    def prefixes(self) -> list[str]:
        return [p.strip() for p in self.allowed_urls.split(",") if p.strip()]


class ConsoleSettings(BaseModel):
    """The web console's sign-in sessions."""

    session_ttl_s: int = Field(
        8 * 3600, ge=60, description="A console session ends this long after sign-in."
    )
    idle_ttl_s: int = Field(3600, ge=60, description="A console session unused this long ends.")


class FineTuningSettings(BaseModel):
    """Fine-tuning jobs and the worker process that trains them."""

    worker: bool = Field(
        True, description="Start the training worker process beside the API (`corral serve`)."
    )
    threads: int = Field(
        default_factory=_default_threads, ge=1, description="CPU threads used for training."
    )
    max_examples: int = Field(
        10_000, ge=1, description="Most examples in a training or validation file."
    )
    max_example_tokens: int = Field(
        1024, ge=16, description="Longest example (tokens, after the chat template)."
    )
    max_steps: int = Field(5_000, ge=1, description="Most optimizer steps in one job.")
    checkpoint_every: int = Field(
        10, ge=1, description="Steps between checkpoints (a restart resumes from the last)."
    )
    max_attempts: int = Field(
        3, ge=1, description="Starts of one job (restarts included) before it is failed."
    )
    poll_s: float = Field(1.0, gt=0, description="How often the idle worker looks for jobs.")
    base_cache_mib: int = Field(
        2048,
        ge=0,
        description="Largest base model kept on disk once converted from its GGUF (float32 "
        "weights, MiB; the most recent base only): the next job's start reads it in a second "
        "or two instead of converting for ~20 s. 0: never kept.",
    )
    base_cache_dir: Path | None = Field(
        None, description="Where that base is kept (default: `<data_dir>/fine_tuning/bases`)."
    )


class Settings(BaseSettings):
    """corral's settings. Every field has a default; the docs table is generated from this."""

    model_config = SettingsConfigDict(
        env_prefix="CORRAL_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the API listens on.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Everything corral writes goes here (a per-user data folder by default).",
    )
    model: str = Field(
        EMBEDDED_MODEL_ID,
        description="Model loaded at start: a catalog name (alias or snapshot) or a path to "
        "a GGUF file.",
    )
    catalog: Path | None = Field(
        None,
        description="Operator's catalog YAML, added to and overriding the shipped catalog.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines as JSON objects (with request ids) or plain text."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (e.g. postgresql://host/db); default SQLite in the data dir.",
    )
    admin_key: SecretStr | None = Field(
        None, description="Admin API key; its presence turns authentication on."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="HMAC secret for stored key hashes; default a generated file in the data "
        "dir. Set the same value on every replica that shares a database.",
    )
    allow_open: bool = Field(
        False, description="Allow serving without auth on a non-loopback address."
    )
    shutdown_grace_s: float = Field(
        25.0,
        ge=0,
        description="On SIGTERM: how long requests and streams in flight may run on (new "
        "ones get 503) before streams are ended with an error event; a second signal ends "
        "them at once.",
    )
    ready_probe_interval_s: float = Field(
        2.0, gt=0, description="How often each loaded engine is probed (one token) for /ready."
    )
    ready_probe_timeout_s: float = Field(
        10.0, gt=0, description="A probe not answered by then (with no slot busy): unready."
    )
    engine: EngineSettings = Field(default_factory=EngineSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    loading: LoadingSettings = Field(
        default_factory=LoadingSettings, description="Loading models on demand."
    )
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    fine_tuning: FineTuningSettings = Field(default_factory=FineTuningSettings)
    evals: EvalSettings = Field(default_factory=EvalSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    messages: MessagesSettings = Field(default_factory=MessagesSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    vector_stores: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'corral.db'}"

    @property
    def files_dir(self) -> Path:
        return self.files.dir or self.data_dir / "files"
