"""Pieces shared by several endpoints' wire models."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

# Fields that OpenAI's API accepts and corral takes without acting on them
# (metadata, storage and routing hints that have no meaning for a local engine).
ACCEPTED_NO_OP_FIELDS = frozenset(
    {
        "store",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "prompt_cache_retention",
        "modalities",
        "verbosity",
    }
)

# Engine extension fields that would let a client change how the server renders
# or loads things. Refused explicitly so a client can never pass them through.
REFUSED_FIELDS = frozenset(
    {
        "chat_template",
        "chat_template_kwargs",
        "grammar",
        "lora",
        "id_slot",
        "cache_prompt",
        "api_base",
        "base_url",
    }
)


def _closed(schema: dict[str, Any], cls: type[Any]) -> None:
    """The document says what the service does: an unknown field is refused (by name, so
    it is kept until then), and the no-op fields an endpoint takes are accepted."""
    schema["additionalProperties"] = False
    properties = schema.setdefault("properties", {})
    for name in sorted(getattr(cls, "no_op_fields", ())):
        properties.setdefault(name, {"description": "Accepted for compatibility; no effect."})


class OpenAIModel(BaseModel):
    """Base for requests: unknown fields are kept so the service can refuse them by name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=_closed)
    # Unknown fields the service accepts and ignores (requests.refuse_unknown_fields).
    no_op_fields: ClassVar[frozenset[str]] = frozenset()

    def unknown_fields(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    # Predicted Outputs: tokens of the prediction that the completion kept, and those it
    # did not (billed as output, as OpenAI bills them).
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = Field(
        default_factory=CompletionTokensDetails
    )


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

StopField = str | list[str] | None

JSONObject = dict[str, Any]
