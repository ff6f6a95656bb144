"""The core's events as the Messages API's stream, in the order Anthropic's streaming
reference (and the ``anthropic`` SDK's accumulator) expects:

    message_start (the message, content empty), ping,
    per content block: content_block_start, content_block_delta … (text_delta,
      thinking_delta then one signature_delta, input_json_delta), content_block_stop
      (an MCP call corral ran: an mcp_tool_use block, then its mcp_tool_result),
    message_delta (stop_reason, stop_sequence, usage), message_stop.

An error mid-stream (the core's ``Failed``) is an ``error`` event. A non-streamed answer
is the same stream collected: one translation for both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from corral.core.errors import CorralError
from corral.inference.mcp import error_text
from corral.protocol.common import Usage
from corral.protocol.events import Event as CoreEvent
from corral.protocol.events import (
    Failed,
    Finish,
    ReasoningDelta,
    ServerTool,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from corral.protocol.messages import (
    ContentBlock,
    McpToolResultBlock,
    McpToolUseBlock,
    Message,
    MessageUsage,
    StopReason,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    error_body,
)
from corral.protocol.responses import McpCallItem

Event = dict[str, Any]
STOP_REASONS: dict[str | None, StopReason] = {
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop": "end_turn",
}


def tool_use_id(call_id: str) -> str:
    """Anthropic's id shape for the core's call id (the client only echoes it back)."""
    return "toolu_" + call_id.removeprefix("call_").removeprefix("call-")


def usage_of(usage: Usage) -> MessageUsage:
    cached = usage.prompt_tokens_details.cached_tokens
    # Anthropic counts cache reads apart: input_tokens + cache_read_input_tokens = prompt.
    return MessageUsage(
        input_tokens=usage.prompt_tokens - cached,
        output_tokens=usage.completion_tokens,
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
        self._failed: CorralError | None = None

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
        elif isinstance(block, ToolUseBlock | McpToolUseBlock):
            block.input = _input_of(text)
        return [*events, {"type": "content_block_stop", "index": self._index}]

    def _open_as(self, kind: type[ContentBlock], make: Callable[[], ContentBlock]) -> list[Event]:
        if isinstance(self._open, kind):
            return []
        return [*self._close(), self._start(make())]

    def feed(self, event: CoreEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            opened = self._open_as(TextBlock, lambda: TextBlock(text=""))
            self._text.append(event.text)
            return [*opened, self._delta({"type": "text_delta", "text": event.text})]
        if isinstance(event, ReasoningDelta):
            make = lambda: ThinkingBlock(thinking="", signature="")  # noqa: E731
            events = self._open_as(ThinkingBlock, make)
            self._text.append(event.text)
            if self._shown:
                events.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
            return events
        if isinstance(event, ToolCallStart):
            block = ToolUseBlock(id=tool_use_id(event.call_id), name=event.name, input={})
            return [*self._close(), self._start(block)]
        if isinstance(event, ToolArgumentsDelta):
            if not event.text or not isinstance(self._open, ToolUseBlock):
                return []
            self._text.append(event.text)
            return [self._delta({"type": "input_json_delta", "partial_json": event.text})]
        if isinstance(event, ServerTool) and isinstance(event.item, McpCallItem):
            return self._mcp_call(event.stage, event.item)
        if isinstance(event, Finish):
            self._finish, self._stop_sequence = event.reason, event.stop_sequence
        elif isinstance(event, UsageReport):
            self.message.usage = usage_of(event.usage)
        elif isinstance(event, Failed):
            self._failed = event.error
            return [error_body(event.error.status, event.error.message)]
        return []

    def _mcp_call(self, stage: str, item: McpCallItem) -> list[Event]:
        """An MCP call corral ran: its ``mcp_tool_use`` block (the input in one delta:
        the model's call was held back until it ended), then its ``mcp_tool_result``."""
        events = self._close()
        if stage == "calling":
            use = McpToolUseBlock(
                id=item.id, name=item.name, server_name=item.server_label, input={}
            )
            events.append(self._start(use))
            self._text.append(item.arguments)
            events.append(self._delta({"type": "input_json_delta", "partial_json": item.arguments}))
            return [*events, *self._close()]
        # An error's words, flagged `is_error`: replayed, the block reads as the model
        # read it (``read_back``).
        text = item.output if item.error is None else error_text(item.error)
        result = McpToolResultBlock(
            tool_use_id=item.id,
            is_error=item.error is not None,
            content=[TextBlock(text=text or "")],
        )
        events.append(self._start(result))
        self._open = None
        return [*events, {"type": "content_block_stop", "index": self._index}]

    def _stop_reason(self) -> StopReason:
        if self._stop_sequence is not None:
            return "stop_sequence"
        return STOP_REASONS.get(self._finish, "end_turn")

    def start(self) -> list[Event]:
        return [
            {"type": "message_start", "message": self.message.model_dump(mode="json")},
            {"type": "ping"},
        ]

    async def end(self) -> list[Event]:
        if self._failed is not None:
            return []
        events = self._close()
        self.message.stop_reason = self._stop_reason()
        self.message.stop_sequence = self._stop_sequence
        delta = {"stop_reason": self.message.stop_reason, "stop_sequence": self._stop_sequence}
        usage = self.message.usage.model_dump()
        return [
            *events,
            {"type": "message_delta", "delta": delta, "usage": usage},
            {"type": "message_stop"},
        ]

    async def collect(self, events: AsyncIterator[CoreEvent]) -> Message:
        """A whole answer: the same translation, said to no one; a failure raises."""
        self.start()
        async for event in events:
            self.feed(event)
            if self._failed is not None:
                raise self._failed
        await self.end()
        return self.message


def _input_of(arguments: str) -> dict[str, Any]:
    """A tool call's input; a call cut short by ``max_tokens`` is not JSON yet: empty."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
