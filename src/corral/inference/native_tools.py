"""Tools in the model's own format, for a model whose chat template knows them (Llama
3.1+, Qwen 2.5/3, Mistral, Hermes-style and others): the conversation goes to the
engine as OpenAI messages with ``tools``, the template renders definitions, past calls
and results the way the model was trained to read them, and the engine parses the calls
the model writes (llama.cpp's ``common/chat``: a grammar that starts at the model's own
tool-call marker for ``auto``).

corral's guarantees hold on top: ``none`` sends no tools, so nothing is parsed as a call;
``required`` and a named choice take corral's own grammar (``inference.tools``), which
forces a valid call whatever the template; a call repeated within one answer is dropped.
"""

from __future__ import annotations

from typing import Any

from corral.core.ids import new_id
from corral.protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    content_text,
)


def native_message(message: Message) -> dict[str, Any]:
    """One message as a template reads it: text content, ``developer`` as ``system``."""
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, ToolMessage):
        text = content_text(message.content)
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": text}
    if isinstance(message, AssistantMessage) and message.tool_calls:
        text = content_text(message.content) if message.content else ""
        calls = [c.model_dump() for c in message.tool_calls]
        return {"role": "assistant", "content": text, "tool_calls": calls}
    return {"role": message.role, "content": content_text(message.content)}


def native_messages(req: ChatCompletionRequest) -> list[dict[str, Any]]:
    return [native_message(m) for m in req.messages]


def engine_calls(raw: list[dict[str, Any]] | None) -> list[ToolCall]:
    """The calls the engine parsed, each once, under corral's ids."""
    calls: list[ToolCall] = []
    seen: set[tuple[str, str]] = set()
    for item in raw or ():
        function = item.get("function") or {}
        key = (str(function.get("name")), str(function.get("arguments", "")))
        if key in seen:
            continue
        seen.add(key)
        calls.append(ToolCall.model_validate({**item, "id": new_id("call")}))
    return calls
