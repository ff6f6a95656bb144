"""OpenAI's Vector Stores API (``/v1/vector_stores`` and its files, file batches and
search): requests and objects as OpenAI's API reference and the ``openai`` SDK's types
define them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corral.protocol.common import OpenAIModel

FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
FILE_STATUSES: tuple[str, ...] = ("in_progress", "completed", "cancelled", "failed")
AttributeValue = str | bool | int | float
MAX_PAIRS = 16
MAX_KEY = 64
MAX_VALUE = 512
AUTO_SIZE = 800  # OpenAI's `auto`: 800-token chunks overlapping by 400
AUTO_OVERLAP = 400


class Closed(BaseModel):
    """A nested request object: an unknown field is a 400, named by its path."""

    model_config = ConfigDict(extra="forbid")


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    _check_pairs(value)
    if any(len(v) > MAX_VALUE for v in value.values()):
        raise ValueError(f"metadata values are at most {MAX_VALUE} characters")
    return value


def check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    _check_pairs(value)
    if any(isinstance(v, str) and len(v) > MAX_VALUE for v in value.values()):
        raise ValueError(f"attribute strings are at most {MAX_VALUE} characters")
    return value


def _check_pairs(value: dict[str, Any]) -> None:
    if len(value) > MAX_PAIRS:
        raise ValueError(f"at most {MAX_PAIRS} key-value pairs")
    if any(len(k) > MAX_KEY for k in value):
        raise ValueError(f"keys are at most {MAX_KEY} characters")


Metadata = Annotated[dict[str, str] | None, Field(None)]
Attributes = Annotated[dict[str, AttributeValue] | None, Field(None)]


class StaticChunking(Closed):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class AutoChunkingParam(Closed):
    type: Literal["auto"]


class StaticChunkingParam(Closed):
    type: Literal["static"]
    static: StaticChunking


ChunkingParam = Annotated[AutoChunkingParam | StaticChunkingParam, Field(discriminator="type")]


def chunking_of(param: AutoChunkingParam | StaticChunkingParam | None) -> StaticChunking:
    """What a file is chunked with: ``auto`` is OpenAI's default, 800 tokens by 400."""
    if isinstance(param, StaticChunkingParam):
        return param.static
    return StaticChunking(max_chunk_size_tokens=AUTO_SIZE, chunk_overlap_tokens=AUTO_OVERLAP)


class ExpiresAfter(Closed):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(OpenAIModel):
    file_ids: list[str] = Field(default_factory=list)
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)  # accepted; not in the object
    metadata: Metadata
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingParam | None = None

    _metadata = field_validator("metadata")(check_metadata)


class VectorStoreUpdate(OpenAIModel):
    name: str | None = Field(None, max_length=256)
    metadata: Metadata
    expires_after: ExpiresAfter | None = None

    _metadata = field_validator("metadata")(check_metadata)


class FileCreate(OpenAIModel):
    file_id: str = Field(min_length=1, max_length=64)
    attributes: Attributes
    chunking_strategy: ChunkingParam | None = None

    _attributes = field_validator("attributes")(check_attributes)


class BatchFile(Closed):
    file_id: str = Field(min_length=1, max_length=64)
    attributes: Attributes
    chunking_strategy: ChunkingParam | None = None

    _attributes = field_validator("attributes")(check_attributes)


class FileBatchCreate(OpenAIModel):
    file_ids: list[str] | None = None
    files: list[BatchFile] | None = None
    attributes: Attributes
    chunking_strategy: ChunkingParam | None = None

    _attributes = field_validator("attributes")(check_attributes)

    @model_validator(mode="after")
    def _one_list(self) -> FileBatchCreate:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("give exactly one of `file_ids` and `files`")
        return self

    def each(self) -> list[BatchFile]:
        """Every file with what applies to it (``files`` carry their own)."""
        if self.files is not None:
            return self.files
        assert self.file_ids is not None
        return [
            BatchFile(
                file_id=f, attributes=self.attributes, chunking_strategy=self.chunking_strategy
            )
            for f in self.file_ids
        ]


class FileUpdate(OpenAIModel):
    attributes: dict[str, AttributeValue] | None

    _attributes = field_validator("attributes")(check_attributes)


class ComparisonFilter(Closed):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str = Field(min_length=1, max_length=MAX_KEY)
    value: str | bool | int | float | list[str | int | float]


class CompoundFilter(Closed):
    type: Literal["and", "or"]
    # Not empty, checked by the service: a schema that demands an item of a recursive
    # type is one that schema-driven generators (schemathesis) fail to fill.
    filters: list[Filter] = Field(max_length=64)


Filter = Annotated[ComparisonFilter | CompoundFilter, Field(discriminator="type")]
CompoundFilter.model_rebuild()


class HybridSearch(Closed):
    embedding_weight: float = Field(ge=0)
    text_weight: float = Field(ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> HybridSearch:
        if self.embedding_weight + self.text_weight <= 0:
            raise ValueError("at least one of the weights must be above 0")
        return self


class RankingOptions(Closed):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(0.0, ge=0, le=1)
    # The Responses `file_search` tool's field; taken here too, so both share one search.
    hybrid_search: HybridSearch | None = None


class SearchRequest(OpenAIModel):
    query: str | list[str]
    filters: Filter | None = None
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False  # accepted; the query is searched as written

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


# --- objects ---


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStoreObject(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] | None = None


class VectorStoreDeleted(BaseModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class Page(BaseModel):
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreList(Page):
    data: list[VectorStoreObject]


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFileObject(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    usage_bytes: int
    status: FileStatus
    last_error: LastError | None = None
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: StaticChunkingParam


class VectorStoreFileDeleted(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class VectorStoreFileList(Page):
    data: list[VectorStoreFileObject]


class FileBatchObject(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: FileStatus
    file_counts: FileCounts


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue] | None = None
    content: list[TextContent]


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class FileContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool = False
    next_page: str | None = None
