"""Wire models of the admin endpoints (/v1/organization): projects, API keys, usage and
costs, in OpenAI's organization shapes."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bounds are the columns' (PostgreSQL's integer; the budget in nano-USD in a bigint): a
# value past them is the client's error, not a 500 from the database.
INT32 = 2**31 - 1
MAX_BUDGET_USD = 1e9


class ClosedBody(BaseModel):
    """An admin body validated as its published schema reads: an unknown field (a typo
    such as `budget` on a key, which has none) is refused, not dropped in silence
    (`additionalProperties: false`), and a value of another JSON type is not coerced
    (`"rpm": "60"` or `true` is no integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    integers: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """JSON Schema's integer includes 1.0 (a number with no fraction): read as 1."""
        if not isinstance(data, dict):
            return data
        return {
            k: int(v) if k in cls.integers and isinstance(v, float) and v.is_integer() else v
            for k, v in data.items()
        }


class ProjectCreate(ClosedBody):
    integers = frozenset({"rpm", "tpm", "max_concurrent"})

    name: str = Field(min_length=1, max_length=256)
    rpm: int | None = Field(None, ge=1, le=INT32)
    tpm: int | None = Field(None, ge=1, le=INT32)
    max_concurrent: int | None = Field(None, ge=1, le=INT32)
    budget_usd: float | None = Field(None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    budget_period: Literal["month", "day"] = "month"


class KeyCreate(ClosedBody):
    integers = frozenset({"rpm", "tpm", "max_concurrent", "expires_at"})

    name: str = Field("", max_length=256)
    rpm: int | None = Field(None, ge=1, le=INT32)
    tpm: int | None = Field(None, ge=1, le=INT32)
    max_concurrent: int | None = Field(None, ge=1, le=INT32)
    models: list[str] | None = None
    # Bounded to what a datetime holds (year 9999): past it fromtimestamp raised a 500.
    expires_at: int | None = Field(None, ge=0, le=253_402_214_400, description="Unix time.")


class ProjectObject(BaseModel):
    object: Literal["organization.project"] = "organization.project"
    id: str
    name: str
    created_at: int
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    budget_usd: float | None
    budget_period: str
    status: Literal["active"] = "active"


class ApiKeyObject(BaseModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    revoked: bool
    models: list[str] | None
    project_id: str | None = None
    rpm: int | None = None
    tpm: int | None = None


class CreatedApiKey(BaseModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    value: str = Field(description="The key itself: shown this once only.")
    redacted_value: str


class ApiKeyDeleted(BaseModel):
    object: Literal["organization.project.api_key.deleted"] = "organization.project.api_key.deleted"
    id: str
    deleted: bool


class ProjectList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProjectObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKeyObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class UsageResult(BaseModel):
    """One group of a usage bucket; a field not grouped by is null."""

    object: Literal["organization.usage.completions.result"]
    input_tokens: int
    input_cached_tokens: int
    output_tokens: int
    input_audio_tokens: int
    output_audio_tokens: int
    num_model_requests: int
    project_id: str | None
    user_id: str | None
    api_key_id: str | None
    model: str | None
    batch: bool | None
    # corral's: with group_by batch_endpoint, the endpoint batch lines ran (null outside)
    batch_endpoint: str | None = None


class CostAmount(BaseModel):
    value: float
    currency: Literal["usd"]


class CostResult(BaseModel):
    object: Literal["organization.costs.result"]
    amount: CostAmount
    line_item: str | None
    project_id: str | None
    batch_endpoint: str | None = None  # corral's, as in usage results


class UsageBucket(BaseModel):
    object: Literal["bucket"]
    start_time: int
    end_time: int
    results: list[UsageResult]


class CostBucket(BaseModel):
    object: Literal["bucket"]
    start_time: int
    end_time: int
    results: list[CostResult]


class UsagePage(BaseModel):
    object: Literal["page"]
    data: list[UsageBucket]
    has_more: bool
    next_page: str | None


class VectorStoresUsageResult(BaseModel):
    """The bytes a bucket's vector stores hold; ``project_id`` with group_by project_id."""

    object: Literal["organization.usage.vector_stores.result"]
    usage_bytes: int
    project_id: str | None


class VectorStoresUsageBucket(BaseModel):
    object: Literal["bucket"]
    start_time: int
    end_time: int
    results: list[VectorStoresUsageResult]


class VectorStoresUsagePage(BaseModel):
    object: Literal["page"]
    data: list[VectorStoresUsageBucket]
    has_more: bool
    next_page: str | None


class CostPage(BaseModel):
    object: Literal["page"]
    data: list[CostBucket]
    has_more: bool
    next_page: str | None
