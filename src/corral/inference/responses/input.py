"""A Responses request translated onto the generation core's Chat Completions request:
input items to messages, flat function tools to chat tools, ``text.format`` to
``response_format``. Every item is checked here, with its index in the error's ``param``.
"""

from __future__ import annotations

import json
from typing import Any

from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.field_errors import optional_string
from corral.core.ids import new_id
from corral.inference.mcp import chat_name as mcp_chat_name
from corral.inference.mcp import read_back
from corral.inference.passes import call_messages
from corral.inference.responses.tools import FILE_SEARCH, INPUT, ToolSet, chat_name
from corral.protocol.responses import ResponseRequest, TextConfig

Item = dict[str, Any]
Message = dict[str, Any]

ROLES = frozenset({"user", "system", "developer", "assistant"})
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
# What `include` may ask for and corral returns.
INCLUDABLE = frozenset(
    {"message.output_text.logprobs", "reasoning.encrypted_content", "file_search_call.results"}
)


def as_items(value: str | list[Item]) -> list[Item]:
    """The request's input as items in OpenAI's shape, each with an id (input_items lists
    them) and a message's content as parts."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for index, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise InvalidRequestError("Each input item must be an object.", param=f"input[{index}]")
        item = with_parts({"type": "message", **raw} if "role" in raw else dict(raw))
        item.setdefault("id", new_id("msg" if item.get("type") == "message" else "item", "_"))
        items.append(item)
    return items


def with_parts(item: Item) -> Item:
    """A message item as OpenAI lists it: its content a list of parts (``input_text`` for
    user, system and developer input, ``output_text`` for an assistant's), never a bare
    string, and a status. Any other item, or content that is neither a string nor a list,
    is returned as it is (``to_messages`` refuses what is wrong). The text the model reads
    is the same either way (``_text`` joins the parts)."""
    if item.get("type") != "message":
        return item
    content = item.get("content")
    kind = "output_text" if item.get("role") == "assistant" else "input_text"
    if isinstance(content, str):
        parts: Any = [_part(kind, content)]
    elif isinstance(content, list):  # a generic `text` part takes the role's type
        parts = [
            _part(kind, p["text"])
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            else p
            for p in content
        ]
    else:
        return item
    return {**item, "content": parts, "status": item.get("status") or "completed"}


def _part(kind: str, text: str) -> Item:
    return {"type": kind, "text": text, **({"annotations": []} if kind == "output_text" else {})}


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError("`content` must be a string or a list of parts.", param=param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        kind = optional_string(kind, f"{param}[{index}].type")
        if kind not in TEXT_PARTS or not isinstance(part.get("text"), str):
            raise UnsupportedParameterError(
                f"Content part type `{kind}` is not supported: this model reads text only.",
                param=f"{param}[{index}]",
            )
        texts.append(part["text"])
    return "".join(texts)


def _required(item: Item, field: str, param: str) -> str:
    value = item.get(field)
    if not isinstance(value, str):
        raise InvalidRequestError(f"`{field}` is required and must be a string.", param=param)
    return value


def _function_call(item: Item, param: str) -> dict[str, Any]:
    name = chat_name(item.get("namespace"), _required(item, "name", f"{param}.name"))
    return {
        "id": _required(item, "call_id", f"{param}.call_id"),
        "type": "function",
        "function": {
            "name": name,
            "arguments": _required(item, "arguments", f"{param}.arguments"),
        },
    }


def _custom_call(item: Item, param: str) -> dict[str, Any]:
    """A custom tool's call as the core's function call: its input is the one argument."""
    name = chat_name(item.get("namespace"), _required(item, "name", f"{param}.name"))
    text = _required(item, "input", f"{param}.input")
    return {
        "id": _required(item, "call_id", f"{param}.call_id"),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({INPUT: text})},
    }


def _output(value: Any, param: str) -> str:
    if isinstance(value, str):
        return value
    return _text(value, param)


# Items the model read in their own turn: a search's results and an MCP server's tool
# list (its answer, which follows in the history, is what the next turn reads); an
# approval asked for and its answer (the call it allowed follows as an `mcp_call`).
SEEN_ONCE = (
    "reasoning",
    "file_search_call",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
)


def _mcp_call(item: Item, param: str) -> list[Message]:
    """An MCP call corral made in an earlier turn, and what the model read of it."""
    label = _required(item, "server_label", f"{param}.server_label")
    name = mcp_chat_name(label, _required(item, "name", f"{param}.name"))
    output, error = item.get("output"), item.get("error")
    read = read_back(
        output if isinstance(output, str) else None, error if isinstance(error, dict) else None
    )
    arguments = item.get("arguments")
    return call_messages(str(item.get("id")), name, str(arguments or "{}"), read)


def to_messages(items: list[Item], instructions: str | None, field: str = "input") -> list[Message]:
    """Chat messages for the items; consecutive function calls become one assistant turn.
    Reasoning items are not replayed: the model's earlier thinking is not its input.
    ``field``: the request field errors name."""
    messages: list[Message] = [{"role": "system", "content": instructions}] if instructions else []
    for index, item in enumerate(items):
        param = f"{field}[{index}]"
        kind = optional_string(item.get("type"), f"{param}.type")
        if kind == "message":
            role = optional_string(item.get("role"), f"{param}.role")
            if role not in ROLES:
                raise InvalidRequestError(f"Unknown role `{role}`.", param=f"{param}.role")
            messages.append({"role": role, "content": _text(item.get("content"), param)})
        elif kind in ("function_call", "custom_tool_call"):
            call = (_function_call if kind == "function_call" else _custom_call)(item, param)
            last = messages[-1] if messages else None
            if last is not None and last.get("tool_calls") and last.get("content") is None:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _required(item, "call_id", f"{param}.call_id"),
                    "content": _output(item.get("output"), f"{param}.output"),
                }
            )
        elif kind == "mcp_call":
            messages += _mcp_call(item, param)
        elif kind not in SEEN_ONCE:
            raise UnsupportedParameterError(
                f"Input item type `{kind}` is not supported.", param=f"{param}.type"
            )
    return messages


def to_tool_choice(choice: str | Item | None) -> str | Item | None:
    if choice is None or isinstance(choice, str):
        return choice
    # A custom tool is a function of the core's, so forcing one is forcing that function.
    if choice.get("type") == "file_search":  # the search is the core's function
        return {"type": "function", "function": {"name": FILE_SEARCH}}
    if choice.get("type") == "mcp" and isinstance(choice.get("name"), str):
        name = mcp_chat_name(str(choice.get("server_label")), choice["name"])
        return {"type": "function", "function": {"name": name}}
    if choice.get("type") in ("function", "custom") and isinstance(choice.get("name"), str):
        name = chat_name(choice.get("namespace"), choice["name"])
        return {"type": "function", "function": {"name": name}}
    raise UnsupportedParameterError(
        "`tool_choice` must be auto, none, required, {type: function, name}, "
        "{type: custom, name}, {type: file_search} or {type: mcp, server_label, name}.",
        param="tool_choice",
    )


def to_response_format(text: TextConfig | None) -> Item | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.json_schema is None:
        raise InvalidRequestError(
            "`text.format.schema` is required for type json_schema.", param="text.format.schema"
        )
    schema: Item = {"name": fmt.name or "response", "schema": fmt.json_schema}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


def chat_body(req: ResponseRequest, items: list[Item], tools: ToolSet) -> dict[str, Any]:
    """The Chat Completions request the core runs for this Responses request."""
    unknown = sorted(set(req.include or ()) - INCLUDABLE)
    if unknown:
        raise UnsupportedParameterError(
            f"`include` value `{unknown[0]}` is not supported.", param="include"
        )
    body: dict[str, Any] = {
        "model": req.model,
        "messages": to_messages(items, req.instructions),
        "parallel_tool_calls": req.parallel_tool_calls,
        "stream": req.stream,
    }
    optional = {
        "tools": tools.chat or None,
        # Only hosted tools asked for, all left out: no choice among none to make.
        "tool_choice": None
        if not tools.chat and req.tool_choice in (None, "auto", "none")
        else to_tool_choice(req.tool_choice),
        "response_format": to_response_format(req.text),
        "max_completion_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.user,
        "prompt_cache_key": req.prompt_cache_key,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if req.top_logprobs is not None:
        body.update(logprobs=True, top_logprobs=req.top_logprobs)
    elif "message.output_text.logprobs" in (req.include or ()):
        body["logprobs"] = True
    effort = req.reasoning.effort if req.reasoning is not None else None
    if effort is not None:
        body["reasoning_effort"] = "low" if effort == "minimal" else effort
    if not body["messages"]:
        raise InvalidRequestError("`input` has no message to answer.", param="input")
    return body
