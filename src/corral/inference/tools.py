"""Tool calling that holds for every model, whatever its chat template knows.

corral does not rely on the model's template to support tools (the embedded model's
does not). It describes the tools in the system prompt and constrains the output
with a JSON schema of the allowed calls, so ``required`` and a named choice always
yield a valid call, ``none`` never does, and ``auto`` lets the model pick between a
call and a plain answer. History turns (assistant tool calls, tool results) are
rewritten as plain text for the same reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from corral.core.ids import new_id
from corral.inference.tool_stream import ToolStream
from corral.protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionCall,
    Message,
    NamedToolChoice,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    content_text,
)

Mode = Literal["off", "auto", "forced"]
MAX_PARALLEL_CALLS = 8
# Bounding the calls by the output budget: a call's shortest text is priced at a token a
# character (JSON punctuation and digits are about that, and the grammar lets a model
# indent) and the wrapper at this many tokens, so a small model cannot repeat a call
# until ``max_tokens`` cuts it (seen: 37 tokens for one ``add`` call with its wrapper).
WRAPPER_TOKENS = 8


@dataclass(frozen=True)
class ToolPlan:
    mode: Mode
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None


@dataclass(frozen=True)
class ParsedOutput:
    content: str | None
    tool_calls: list[ToolCall] | None


def _engine_message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        # "developer" is OpenAI's newer name for system; templates know "system".
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, AssistantMessage) and message.tool_calls:
        calls = [
            {"name": c.function.name, "arguments": _loads_or_text(c.function.arguments)}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": json.dumps({"tool_calls": calls})}
    if isinstance(message, ToolMessage):
        text = content_text(message.content)
        return {"role": "user", "content": f"Tool result ({message.tool_call_id}):\n{text}"}
    return {"role": message.role, "content": content_text(message.content)}


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _allowed_tools(req: ChatCompletionRequest) -> tuple[Mode, list[Tool]]:
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return "off", []
    if isinstance(choice, NamedToolChoice):
        return "forced", [t for t in tools if t.function.name == choice.function.name]
    return ("forced" if choice == "required" else "auto"), tools


def _call_schema(tool: Tool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.function.name},
            "arguments": tool.function.parameters,
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def max_calls(tools: list[Tool], output_limit: int | None) -> int:
    """How many calls the grammar allows so that they all fit in ``output_limit``: at
    least one (a cut answer is then salvaged), at most ``MAX_PARALLEL_CALLS``."""
    if output_limit is None:
        return MAX_PARALLEL_CALLS
    per_call = min(len(json.dumps(_shortest_call(t))) for t in tools)
    return max(1, min(MAX_PARALLEL_CALLS, (output_limit - WRAPPER_TOKENS) // per_call))


def _shortest_call(tool: Tool) -> dict[str, Any]:
    properties = (tool.function.parameters or {}).get("properties") or {}
    required = (tool.function.parameters or {}).get("required") or []
    arguments = {k: 0 for k in required if isinstance(k, str) and k in properties}
    return {"name": tool.function.name, "arguments": arguments}


def output_schema(
    mode: Mode, tools: list[Tool], parallel: bool, limit: int = MAX_PARALLEL_CALLS
) -> dict[str, Any]:
    calls = [_call_schema(t) for t in tools]
    calls_schema = {
        "type": "array",
        "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
        "minItems": 1,
        "maxItems": limit if parallel else 1,
    }
    forced = {
        "type": "object",
        "properties": {"tool_calls": calls_schema},
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    if mode == "forced":
        return forced
    answer = {
        "type": "object",
        "properties": {"content": {"type": "string"}},
        "required": ["content"],
        "additionalProperties": False,
    }
    return {"anyOf": [forced, answer]}


def _tools_prompt(mode: Mode, tools: list[Tool]) -> str:
    described = [
        {
            "name": t.function.name,
            "description": t.function.description or "",
            "parameters": t.function.parameters,
        }
        for t in tools
    ]
    text = (
        "You can call these tools:\n"
        + json.dumps(described)
        + '\nTo call tools, reply with only JSON: {"tool_calls": [{"name": <tool name>, '
        '"arguments": <arguments object>}]}.'
    )
    if mode == "auto":
        text += ' If no tool is needed, reply with only JSON: {"content": <your answer>}.'
    return text


def plan_tools(req: ChatCompletionRequest) -> ToolPlan:
    messages = [_engine_message(m) for m in req.messages]
    mode, tools = _allowed_tools(req)
    if mode == "off":
        return ToolPlan("off", messages, None)
    prompt = _tools_prompt(mode, tools)
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{prompt}"}
    else:
        messages.insert(0, {"role": "system", "content": prompt})
    # A named choice is one call, as OpenAI's is; otherwise as many as the budget holds.
    named = isinstance(req.tool_choice, NamedToolChoice)
    limit = 1 if named else max_calls(tools, req.output_limit)
    schema = output_schema(mode, tools, req.parallel_tool_calls and not named, limit)
    response_format = {"type": "json_schema", "json_schema": {"name": "tools", "schema": schema}}
    return ToolPlan(mode, messages, response_format)


def parse_output(text: str) -> ParsedOutput:
    """Turn constrained output back into content or tool calls."""
    try:
        data = json.loads(text)
    except ValueError:
        return salvage(text)  # cut short by max_tokens: not valid JSON
    if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
        calls = [
            ToolCall(
                id=new_id("call"),
                function=FunctionCall(
                    name=str(call["name"]), arguments=json.dumps(call["arguments"])
                ),
            )
            for call in data["tool_calls"]
        ]
        return ParsedOutput(None, calls)
    if isinstance(data, dict) and isinstance(data.get("content"), str):
        return ParsedOutput(data["content"], None)
    return salvage(text)


def salvage(text: str) -> ParsedOutput:
    """What a cut (or malformed) tool output said for certain: its content so far and
    the calls it finished. corral's ``{"tool_calls": …}`` wrapper is never the answer."""
    stream = ToolStream()
    content: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for piece in stream.feed(text):
        if piece.kind == "content":
            content.append(piece.text)
        elif piece.kind == "call":
            names[piece.index] = piece.text
        else:
            arguments.setdefault(piece.index, []).append(piece.text)
    calls = []
    for index, name in names.items():
        raw = "".join(arguments.get(index, ()))
        try:
            value = json.loads(raw)  # arguments open with "{": only a finished object parses
        except ValueError:
            continue
        function = FunctionCall(name=name, arguments=json.dumps(value))
        calls.append(ToolCall(id=new_id("call"), function=function))
    if calls:
        return ParsedOutput(None, calls)
    return ParsedOutput("".join(content), None)
