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


def output_schema(mode: Mode, tools: list[Tool], parallel: bool) -> dict[str, Any]:
    calls = [_call_schema(t) for t in tools]
    calls_schema = {
        "type": "array",
        "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
        "minItems": 1,
        "maxItems": MAX_PARALLEL_CALLS if parallel else 1,
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
    schema = output_schema(mode, tools, req.parallel_tool_calls)
    response_format = {"type": "json_schema", "json_schema": {"name": "tools", "schema": schema}}
    return ToolPlan(mode, messages, response_format)


def parse_output(text: str) -> ParsedOutput:
    """Turn constrained output back into content or tool calls."""
    try:
        data = json.loads(text)
    except ValueError:
        return ParsedOutput(text, None)  # cut short by max_tokens: not valid JSON
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
    return ParsedOutput(text, None)
