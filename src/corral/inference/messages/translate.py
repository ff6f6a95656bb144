"""A Messages request translated onto the generation core's Chat Completions request:
``system`` and content blocks to chat messages, client tools to chat tools, ``tool_choice``,
``thinking`` and ``output_config`` to their chat counterparts. Every block is checked
here, with its place in the error's ``param``; what corral cannot do is refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.field_errors import optional_string, strictly
from corral.inference.messages.mcp import tool_use_name
from corral.inference.tool_schema import check_parameters
from corral.protocol.messages import ClientToolParam, InputMessage, MessagesRequest

Block = dict[str, Any]
Message = dict[str, Any]

# Anthropic's effort levels beyond chat's three read as the highest.
EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# `context_management` edits that change nothing here: thinking is never replayed to the
# model (a thinking block's text is the client's copy), so clearing it is what happens.
NO_OP_EDITS = ("clear_thinking_",)
MEDIA_BLOCKS = frozenset({"image", "document", "search_result", "container_upload"})


@dataclass
class Tools:
    chat: list[Block] = field(default_factory=list)  # what the core offers the model
    left_out: list[str] = field(default_factory=list)  # server tool types not run


def _unsupported(message: str, param: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(message, param=param)


def _text_of(blocks: str | list[Block] | Any, param: str) -> str:
    """Text blocks (a system prompt, a tool result) as one string."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise InvalidRequestError("Expected a string or a list of text blocks.", param=param)
    texts = []
    for index, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            why = f"Block type `{kind}` is not supported here: this model reads text only."
            raise _unsupported(why, f"{param}[{index}]")
        texts.append(block["text"])
    return "\n".join(texts)


def _user(blocks: list[Block], param: str) -> list[Message]:
    """A user turn: its tool results (each a tool message), then its text."""
    out: list[Message] = []
    texts: list[str] = []
    for index, block in enumerate(blocks):
        where = f"{param}[{index}]"
        kind = optional_string(block.get("type"), f"{where}.type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_result":
            out.append(_tool_result(block, where))
        elif kind in MEDIA_BLOCKS:
            raise _unsupported(f"`{kind}` blocks are not supported: this model reads text.", where)
        else:
            raise _unsupported(f"Block type `{kind}` is not supported in a user turn.", where)
    if texts:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def _tool_result(block: Block, param: str) -> Message:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError("`tool_use_id` is required.", param=f"{param}.tool_use_id")
    content = _text_of(block.get("content", ""), f"{param}.content")
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant(
    blocks: list[Block], param: str, verify: Callable[[str, str], None]
) -> list[Message]:
    """An assistant turn: its text and tool calls. Thinking is checked (its signature
    must be ours) but not replayed: the model's earlier thinking is not its input. An
    MCP call corral made in the turn and its result are a call and its tool message: the
    text after them is another assistant message."""
    turn = _Turn()
    for index, block in enumerate(blocks):
        where = f"{param}[{index}]"
        kind = optional_string(block.get("type"), f"{where}.type")
        if kind == "text" and isinstance(block.get("text"), str):
            turn.texts.append(block["text"])
        elif kind == "tool_use":
            turn.calls.append(_tool_use(block, where))
        elif kind == "mcp_tool_use":
            turn.calls.append(_tool_use({**block, "name": tool_use_name(block)}, where))
        elif kind == "mcp_tool_result":
            turn.flush()
            turn.messages.append(_tool_result(block, where))
        elif kind == "thinking":
            verify(str(block.get("signature", "")), f"{where}.signature")
        else:
            raise _unsupported(f"Block type `{kind}` is not supported in an assistant turn.", where)
    turn.flush()
    return turn.messages or [{"role": "assistant", "content": None}]


@dataclass
class _Turn:
    messages: list[Message] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    calls: list[Block] = field(default_factory=list)

    def flush(self) -> None:
        if not self.texts and not self.calls:
            return
        message: Message = {"role": "assistant", "content": "".join(self.texts) or None}
        if self.calls:
            message["tool_calls"] = self.calls
        self.messages.append(message)
        self.texts, self.calls = [], []


def _tool_use(block: Block, param: str) -> Block:
    name, call_id, arguments = block.get("name"), block.get("id"), block.get("input", {})
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise InvalidRequestError("A `tool_use` block needs `id` and `name`.", param=param)
    if not isinstance(arguments, dict):
        raise InvalidRequestError("`input` must be an object.", param=f"{param}.input")
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"id": call_id, "type": "function", "function": function}


def to_messages(req: MessagesRequest, verify: Callable[[str, str], None]) -> list[Message]:
    messages: list[Message] = []
    if req.system:
        messages.append({"role": "system", "content": _text_of(req.system, "system")})
    for index, turn in enumerate(req.messages):
        messages += _turn(turn, f"messages[{index}].content", verify)
    return messages


def _turn(turn: InputMessage, param: str, verify: Callable[[str, str], None]) -> list[Message]:
    if turn.role == "system":
        return [{"role": "system", "content": _text_of(turn.content, param)}]
    if isinstance(turn.content, str):
        return [{"role": turn.role, "content": turn.content}]
    if turn.role == "user":
        return _user(turn.content, param)
    return _assistant(turn.content, param, verify)


def _client_tool(tool: Block, index: int) -> Block:
    # Anthropic's location names the client tool's union member: tools.0.custom.name
    strictly(ClientToolParam, tool, ("tools", index), member="custom")
    param, anthropic_at = f"tools[{index}].input_schema", f"tools.{index}.custom.input_schema"
    check_parameters(tool["name"], tool["input_schema"], param, anthropic_at)
    function: Block = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def to_tools(requested: list[Block] | None, refuse_server: bool) -> Tools:
    """Client tools (no ``type``, or ``custom``) are served; Anthropic-defined tools
    (``web_search_20250305``, ``bash_20250124`` …) run on Anthropic's side or have a
    schema only Anthropic's models know: left out and named, or refused."""
    tools = Tools()
    for index, tool in enumerate(requested or ()):
        kind, param = tool.get("type"), f"tools[{index}]"
        if kind in (None, "custom"):
            tools.chat.append(_client_tool(tool, index))
        elif kind == "mcp_toolset":
            continue  # the MCP connector's (messages.mcp)
        elif refuse_server:
            why = f"Tool type `{kind}` is not supported: this server runs client tools only."
            raise _unsupported(why, f"{param}.type")
        else:
            tools.left_out.append(str(kind))
    return tools


def to_tool_choice(choice: Block | None, tools: Tools) -> tuple[Any, bool]:
    """Chat's ``tool_choice`` and ``parallel_tool_calls``."""
    if choice is None:
        return None, True
    kind = choice.get("type")
    parallel = not choice.get("disable_parallel_tool_use", False)
    if kind == "tool":
        name = choice.get("name")
        if name not in {t["function"]["name"] for t in tools.chat}:
            raise InvalidRequestError(
                f"Tool choice `{name}` is not one of the tools.", param="tool_choice.name"
            )
        return {"type": "function", "function": {"name": name}}, parallel
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise InvalidRequestError(
            "`tool_choice.type` must be auto, any, tool or none.", param="tool_choice.type"
        )
    if not tools.chat and mapped == "required":
        raise InvalidRequestError("`tool_choice` any needs client tools.", param="tool_choice")
    if not tools.chat:  # only server tools were sent, all left out: no choice to make
        return None, parallel
    return mapped, parallel


@dataclass(frozen=True)
class Thinking:
    effort: str | None  # chat's reasoning_effort (reasoning models only)
    shown: bool  # the thinking's text returned (else only its signature: "omitted")


def to_thinking(req: MessagesRequest, reasoning: bool) -> Thinking:
    """``thinking`` and ``output_config.effort`` as chat's reasoning effort.

    ``enabled`` needs a reasoning model (its ``budget_tokens`` picks the effort whose
    budget covers it); ``adaptive`` and ``effort`` are no-ops on other models (agents send
    them to every model); ``disabled`` is a no-op (a reasoning model's template thinks)."""
    config = req.thinking or {}
    kind = config.get("type")
    if kind not in (None, "enabled", "adaptive", "disabled"):
        raise InvalidRequestError(
            "`thinking.type` must be enabled, adaptive or disabled.", param="thinking.type"
        )
    shown = config.get("display") != "omitted"
    effort = EFFORT.get(str((req.output_config or {}).get("effort")))
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or not 1024 <= budget < req.max_tokens:
            raise InvalidRequestError(
                "`thinking.budget_tokens` must be at least 1024 and less than `max_tokens`.",
                param="thinking.budget_tokens",
            )
        if not reasoning:
            raise _unsupported(
                f"`thinking` is only supported by reasoning models; `{req.model}` is not one "
                "(see the `reasoning` capability in /v1/models).",
                "thinking",
            )
        effort = "low" if budget <= 1024 else "medium" if budget <= 4096 else "high"
    return Thinking(effort if reasoning else None, shown)


def to_response_format(config: Block | None) -> Block | None:
    """``output_config``: ``effort`` (see ``to_thinking``) and ``format`` (structured
    output: a JSON schema the answer is constrained to)."""
    config = config or {}
    for name in sorted(set(config) - {"effort", "format"}):
        raise _unsupported(f"`output_config.{name}` is not supported.", f"output_config.{name}")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _unsupported("`output_config.format.type` must be json_schema.", "output_config")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "`output_config.format.schema` must be an object.", param="output_config.format"
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def check_fields(req: MessagesRequest) -> None:
    """Unknown fields, and features corral does not serve, are refused by name."""
    for name in req.unknown_fields():
        if name == "container":
            raise _unsupported(f"`{name}` is not supported: this server runs no tools.", name)
        raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
    for name in sorted(set(req.metadata or {}) - {"user_id"}):
        raise InvalidRequestError(f"Unrecognized metadata field: {name}", param=f"metadata.{name}")
    for index, edit in enumerate((req.context_management or {}).get("edits") or ()):
        kind = str(edit.get("type")) if isinstance(edit, dict) else None
        if kind is None or not kind.startswith(NO_OP_EDITS):
            raise _unsupported(
                f"Context edit `{kind}` is not supported.", f"context_management.edits[{index}]"
            )


def chat_body(
    req: MessagesRequest, messages: list[Message], tools: Tools, thinking: Thinking
) -> dict[str, Any]:
    """The Chat Completions request the core runs (always streamed: one path for both
    of the dialect's answers, and the stop sequence found is named on it)."""
    choice, parallel = to_tool_choice(req.tool_choice, tools)
    body: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "max_completion_tokens": req.max_tokens,
        "parallel_tool_calls": parallel,
        "stream": True,
    }
    optional = {
        "tools": tools.chat or None,
        "tool_choice": choice,
        "response_format": to_response_format(req.output_config),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "stop": req.stop_sequences or None,
        "reasoning_effort": thinking.effort,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
