"""OpenAI's Responses API (``/v1/responses``): the request, the response object and its
output items, as OpenAI's API reference and the ``openai`` SDK's types define them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corral.protocol.chat import FUNCTION_NAME, FUNCTION_NAME_MAX
from corral.protocol.common import OpenAIModel

JSON = dict[str, Any]


class ToolParam(BaseModel):
    """What every tool of a request has: its type (the rest is checked by type)."""

    type: str


class NamedToolParam(BaseModel):
    """What the tools corral offers the model share: a name as OpenAI checks a
    function's, and a description."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=FUNCTION_NAME, max_length=FUNCTION_NAME_MAX)
    description: str | None = None


class FunctionToolParam(NamedToolParam):
    """A function tool as OpenAI checks it (``parameters`` and ``strict`` may be left
    out here, as the chat tool's may)."""

    type: Literal["function"]
    parameters: JSON | None = None
    strict: bool | None = None


class CustomToolParam(NamedToolParam):
    type: Literal["custom"]
    format: JSON | None = None


class NamespaceToolParam(NamedToolParam):
    """A group of function tools (each checked as a function tool, with its index)."""

    type: Literal["namespace"]
    tools: list[JSON] = Field(min_length=1)


class TextFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = Field(None, max_length=64)
    description: str | None = None
    # ``schema`` shadows a BaseModel attribute, hence the alias.
    json_schema: JSON | None = Field(None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class TextConfig(BaseModel):
    format: TextFormat = Field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(BaseModel):
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    # Summaries of the thinking: corral returns the thinking itself, so these are no-ops.
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponseRequest(OpenAIModel):
    model: str = Field(min_length=1, max_length=256)
    # A string, or a list of items (messages, function calls and their outputs,
    # reasoning): the items are checked one by one by the service, with their index.
    input: str | list[JSON] = Field(min_length=1)
    instructions: str | None = None
    tools: list[JSON] | None = None
    tool_choice: str | JSON | None = None
    parallel_tool_calls: bool = True
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    user: str | None = Field(None, max_length=256)
    safety_identifier: str | None = Field(None, max_length=256)
    prompt_cache_key: str | None = Field(None, max_length=1024)
    store: bool = True
    stream: bool = False
    previous_response_id: str | None = Field(None, max_length=64)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    client_metadata: dict[str, Any] | None = None  # Codex's; kept with nothing done
    background: bool = False
    conversation: str | JSON | None = None


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[JSON] = Field(default_factory=list)
    logprobs: list[JSON] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText] = Field(default_factory=list)


class FunctionCallItem(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None  # a namespace tool's calls name the inner tool
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class CustomToolCallItem(BaseModel):
    """A call of a custom (free-form) tool: its ``input`` is text, not JSON arguments."""

    type: Literal["custom_tool_call"] = "custom_tool_call"
    id: str
    call_id: str
    name: str
    input: str
    namespace: str | None = None


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[JSON] = Field(default_factory=list)
    content: list[ReasoningText] = Field(default_factory=list)
    encrypted_content: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class FileSearchCallItem(BaseModel):
    """A search corral ran over the request's vector stores (the `file_search` tool):
    ``results`` only when ``include`` asks for ``file_search_call.results``."""

    type: Literal["file_search_call"] = "file_search_call"
    id: str
    queries: list[str] = Field(default_factory=list)
    status: Literal["in_progress", "searching", "completed", "incomplete", "failed"] = "in_progress"
    results: list[JSON] | None = None


class McpListToolsItem(BaseModel):
    """The tools an MCP server listed (kept in the context: a later turn reuses it)."""

    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    id: str
    server_label: str
    tools: list[JSON] = Field(default_factory=list)
    error: str | None = None


class McpCallItem(BaseModel):
    """A call corral made to an MCP server's tool, with its output or error."""

    type: Literal["mcp_call"] = "mcp_call"
    id: str
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: JSON | None = None
    approval_request_id: str | None = None
    status: Literal["in_progress", "completed", "incomplete", "calling", "failed"] = "completed"


class McpApprovalRequestItem(BaseModel):
    """A call the model asked for that waits for the client's ``mcp_approval_response``."""

    type: Literal["mcp_approval_request"] = "mcp_approval_request"
    id: str
    server_label: str
    name: str
    arguments: str


OutputItem = (
    OutputMessage
    | FunctionCallItem
    | CustomToolCallItem
    | ReasoningItem
    | FileSearchCallItem
    | McpListToolsItem
    | McpCallItem
    | McpApprovalRequestItem
)


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress", "queued", "cancelled"]
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    error: JSON | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    conversation: JSON | None = None  # {"id": …} when the turn was added to one
    reasoning: ReasoningConfig | None = None
    store: bool = True
    temperature: float | None = None
    top_p: float | None = None
    text: TextConfig = Field(default_factory=TextConfig)
    tool_choice: str | JSON = "auto"
    tools: list[JSON] = Field(default_factory=list)
    truncation: Literal["auto", "disabled"] = "disabled"
    user: str | None = None
    background: bool = False


class InputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JSON]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputTokenCount(BaseModel):
    object: Literal["response.input_tokens"] = "response.input_tokens"
    input_tokens: int


class ConversationObject(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str] = Field(default_factory=dict)


class ConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[JSON] | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, str] = Field(max_length=16)


class ItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[JSON] = Field(min_length=1)


class DeletedConversation(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True
