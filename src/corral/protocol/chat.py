"""Chat completions: request, response and stream chunk."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from corral.protocol.common import (
    ACCEPTED_NO_OP_FIELDS,
    FinishReason,
    JSONObject,
    OpenAIModel,
    StopField,
    StreamOptions,
    Usage,
)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


Content = str | list[TextPart]


class Prediction(BaseModel):
    """Predicted Outputs: text the completion is expected to repeat."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["content"]
    content: Content

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class SystemMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ToolMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["tool"]
    content: Content
    tool_call_id: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


def content_text(content: Content | None) -> str:
    """Flatten string-or-parts content to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


# A function's name as OpenAI checks it: the pattern, then at most 64 characters.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]+$"
FUNCTION_NAME_MAX = 64
# The core's own requests (from Messages, Responses) carry names their dialects allow:
# Anthropic's up to 128 characters, a Responses namespace's "<namespace>__<name>".
CORE_NAMES = {"function_name_max": 256}


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: JSONObject = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name_length(cls, name: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("function_name_max", FUNCTION_NAME_MAX)
        if len(name) > limit:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": limit},
            )
        return name


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JSONSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    json_schema: JSONObject | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatCompletionRequest(OpenAIModel):
    no_op_fields = ACCEPTED_NO_OP_FIELDS
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    # Extension (vLLM has it too; Anthropic's Messages API maps onto it): sample from the
    # k most likely tokens only.
    top_k: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: StopField = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = Field(None, max_length=256)
    # OpenAI routes requests with one key to one machine so they share a prompt cache;
    # corral's upstream pools do the same (engines/upstream.py), the embedded engine
    # needs nothing from it.
    prompt_cache_key: str | None = Field(None, max_length=1024)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    # Reasoning models only: a thinking budget (low/medium/high); others answer 400.
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    prediction: Prediction | None = None
    # Extension (vLLM and llama.cpp have it too): keep generating past end-of-sequence,
    # so benchmarks can fix the output length.
    ignore_eos: bool = False

    @field_validator("logit_bias")
    @classmethod
    def _check_logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for token, bias in value.items():
            if not token.isdigit():
                raise ValueError(f"logit_bias keys must be token ids, got {token!r}")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"logit_bias values must be in [-100, 100], got {bias}")
        return value

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    # A reasoning model's thinking, apart from the answer (absent for other models).
    reasoning_content: str | None = Field(None, exclude_if=lambda v: v is None)
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: FinishReason | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: Usage
