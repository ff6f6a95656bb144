"""Anthropic's Messages API (``/v1/messages``): the request, the message, its content blocks
and usage, the token count and the model list, as Anthropic's API reference and the
``anthropic`` SDK's types define them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corral.protocol.common import OpenAIModel

JSON = dict[str, Any]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # `system` inside `messages` is Claude Code's; it is read as a system turn.
    role: Literal["user", "assistant", "system"]
    # A string, or content blocks: checked one by one by the service, with their index.
    content: str | list[JSON]


class InputSchema(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["object"]


class ClientToolParam(BaseModel):
    """A client tool (no ``type``, or ``custom``) as Anthropic checks it."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["custom"] | None = None
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: InputSchema


class MessagesRequest(OpenAIModel):
    """Unknown fields are kept (``extra="allow"``) so that the service refuses each by
    name rather than dropping it."""

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[JSON] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)
    tools: list[JSON] | None = None
    tool_choice: JSON | None = None
    mcp_servers: list[JSON] | None = None  # Anthropic's MCP connector (remote servers)
    thinking: JSON | None = None
    metadata: JSON | None = None
    stream: bool = False
    output_config: JSON | None = None
    # Accepted, with nothing to do on this server (docs/api.md says why for each).
    context_management: JSON | None = None
    cache_control: JSON | None = None
    service_tier: str | None = None
    speed: str | None = None
    inference_geo: str | None = None


class CountTokensRequest(MessagesRequest):
    max_tokens: int = Field(1, ge=1)  # not part of a count request


class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ThinkingBlock(BaseModel):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class ToolUseBlock(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: JSON


class McpToolUseBlock(BaseModel):
    """A call corral made to a remote MCP server's tool (the MCP connector)."""

    type: Literal["mcp_tool_use"] = "mcp_tool_use"
    id: str
    name: str
    server_name: str
    input: JSON


class McpToolResultBlock(BaseModel):
    type: Literal["mcp_tool_result"] = "mcp_tool_result"
    tool_use_id: str
    is_error: bool = False
    content: list[TextBlock]


ContentBlock = TextBlock | ThinkingBlock | ToolUseBlock | McpToolUseBlock | McpToolResultBlock


class MessageUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    service_tier: Literal["standard"] = "standard"


class Message(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[ContentBlock] = Field(default_factory=list)
    model: str
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: MessageUsage


class TokenCount(BaseModel):
    input_tokens: int


class AnthropicModelInfo(BaseModel):
    type: Literal["model"] = "model"
    id: str
    display_name: str
    created_at: str  # RFC 3339
    max_input_tokens: int | None = None  # the context window


class AnthropicModelList(BaseModel):
    data: list[AnthropicModelInfo]
    first_id: str | None
    last_id: str | None
    has_more: bool = False


# Anthropic's error type for each status corral answers with; 503 (corral at its
# admission bound, an engine unavailable) is Anthropic's 529 overloaded_error, which its
# clients retry.
ERROR_TYPES: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    405: (405, "invalid_request_error"),
    409: (409, "invalid_request_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    503: (529, "overloaded_error"),
}


def error_status(status: int) -> tuple[int, str]:
    """(HTTP status, Anthropic error type) for a corral error's status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return (status, "invalid_request_error") if status < 500 else (500, "api_error")


def error_body(status: int, message: str) -> JSON:
    return {"type": "error", "error": {"type": error_status(status)[1], "message": message}}
