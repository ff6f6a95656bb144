"""The core's chat chunks as the Messages API's stream, in the order Anthropic's streaming
reference (and the ``anthropic`` SDK's accumulator) expects:

    message_start (the message, content empty), ping,
    per content block: content_block_start, content_block_delta … (text_delta,
      thinking_delta then one signature_delta, input_json_delta), content_block_stop,
    message_delta (stop_reason, stop_sequence, usage), message_stop.

An error mid-stream is an ``error`` event. A non-streamed answer is the same stream
collected: one translation for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from corral.core.errors import CorralError
from corral.protocol.messages import (
    ContentBlock,
    Message,
    MessageUsage,
    StopReason,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    error_body,
)

log = logging.getLogger(__name__)

Event = dict[str, Any]
Chunk = dict[str, Any]
STOP_REASONS: dict[str | None, StopReason] = {
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop": "end_turn",
}


def tool_use_id(call_id: str) -> str:
    """Anthropic's id shape for the core's call id (the client only echoes it back)."""
    return "toolu_" + call_id.removeprefix("call_").removeprefix("call-")


def usage_of(usage: dict[str, Any]) -> MessageUsage:
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    prompt = int(usage.get("prompt_tokens", 0))
    # Anthropic counts cache reads apart: input_tokens + cache_read_input_tokens = prompt.
    return MessageUsage(
        input_tokens=prompt - cached,
        output_tokens=int(usage.get("completion_tokens", 0)),
        cache_read_input_tokens=cached,
    )


class MessageStream:
    def __init__(self, message: Message, seal: Callable[[str], str], shown: bool) -> None:
        self.message = message
        self._seal = seal
        self._shown = shown  # thinking text returned, or only its signature
        self._open: ContentBlock | None = None
        self._text: list[str] = []
        self._finish: str | None = None
        self._stop_sequence: str | None = None

    @property
    def _index(self) -> int:
        return len(self.message.content) - 1

    def _start(self, block: ContentBlock) -> Event:
        self.message.content.append(block)
        self._open, self._text = block, []
        return {
            "type": "content_block_start",
            "index": self._index,
            "content_block": block.model_dump(mode="json"),
        }

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _close(self) -> list[Event]:
        block, text = self._open, "".join(self._text)
        if block is None:
            return []
        self._open, events = None, []
        if isinstance(block, TextBlock):
            block.text = text
        elif isinstance(block, ThinkingBlock):
            block.thinking = text if self._shown else ""
            block.signature = self._seal(text)
            events.append(self._delta({"type": "signature_delta", "signature": block.signature}))
        else:
            block.input = _input_of(text)
        return [*events, {"type": "content_block_stop", "index": self._index}]

    def _open_as(self, kind: type[ContentBlock], make: Callable[[], ContentBlock]) -> list[Event]:
        if isinstance(self._open, kind):
            return []
        return [*self._close(), self._start(make())]

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        events: list[Event] = []
        if thinking := delta.get("reasoning_content"):
            events += self._open_as(ThinkingBlock, lambda: ThinkingBlock(thinking="", signature=""))
            self._text.append(thinking)
            if self._shown:
                events.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        if text := delta.get("content"):
            events += self._open_as(TextBlock, lambda: TextBlock(text=""))
            self._text.append(text)
            events.append(self._delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or ():
            events += self._call(call)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._stop_sequence = choice.get("stop_sequence")
        return events

    def _call(self, call: dict[str, Any]) -> list[Event]:
        """A call's start opens a tool_use block; later pieces are its input's JSON."""
        events: list[Event] = []
        function = call.get("function") or {}
        if call.get("id"):
            events += self._close()
            block = ToolUseBlock(
                id=tool_use_id(call["id"]), name=function.get("name", ""), input={}
            )
            events.append(self._start(block))
        arguments = function.get("arguments") or ""
        if arguments and isinstance(self._open, ToolUseBlock):
            self._text.append(arguments)
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    def _stop_reason(self) -> StopReason:
        if self._stop_sequence is not None:
            return "stop_sequence"
        return STOP_REASONS.get(self._finish, "end_turn")

    async def events(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Event]:
        """The stream's events; an error raises (``stream`` turns it into an event)."""
        start = self.message.model_dump(mode="json")
        yield {"type": "message_start", "message": start}
        yield {"type": "ping"}
        async for chunk in chunks:
            if "usage" in chunk and not chunk.get("choices"):
                self.message.usage = usage_of(chunk["usage"])
                continue
            for choice in chunk.get("choices") or ():
                for event in self._choice(choice):
                    yield event
        for event in self._close():
            yield event
        self.message.stop_reason = self._stop_reason()
        self.message.stop_sequence = self._stop_sequence
        delta = {"stop_reason": self.message.stop_reason, "stop_sequence": self._stop_sequence}
        yield {"type": "message_delta", "delta": delta, "usage": self.message.usage.model_dump()}
        yield {"type": "message_stop"}

    async def stream(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Event]:
        try:
            async for event in self.events(chunks):
                yield event
        except Exception as exc:
            if not isinstance(exc, CorralError):
                log.exception("message stream failed")
                exc = CorralError("The server had an error while streaming.")
            yield error_body(exc.status, exc.message)

    async def collect(self, chunks: AsyncIterator[Chunk]) -> Message:
        async for _ in self.events(chunks):
            pass
        return self.message


def _input_of(arguments: str) -> dict[str, Any]:
    """A tool call's input; a call cut short by ``max_tokens`` is not JSON yet: empty."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
