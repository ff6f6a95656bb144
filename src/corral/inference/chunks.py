"""The core's events as OpenAI's chunk streams: Chat Completions' ``chat.completion.chunk``
and legacy completions' ``text_completion``.

Each chunk carries the request's id, model and fingerprint (the snapshot that served
it, never the engine's path); an error mid-stream (``Failed``) is a ``{"error": …}``
payload. The framing (``data:`` lines, ``[DONE]``) is the API's.
"""

from __future__ import annotations

import time
from typing import Any

from corral.core.ids import new_id
from corral.protocol.events import (
    Event,
    Failed,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)

Payload = dict[str, Any]


class Chunks:
    """What both chunk streams share: the stamp, usage and errors."""

    object = ""
    prefix = ""

    def __init__(self, model: str, fingerprint: str) -> None:
        self._id = new_id(self.prefix)
        self._created = int(time.time())
        self._model = model
        self._fingerprint = fingerprint

    def chunk(self, choices: list[Payload], **extra: Any) -> Payload:
        return {
            "id": self._id,
            "object": self.object,
            "created": self._created,
            "model": self._model,
            "system_fingerprint": self._fingerprint,
            "choices": choices,
            **extra,
        }

    def start(self) -> list[Payload]:
        return []

    async def end(self) -> list[Payload]:
        return []

    def feed(self, event: Event) -> list[Payload]:
        if isinstance(event, UsageReport):
            return [self.chunk([], usage=event.usage.model_dump())]
        if isinstance(event, Failed):
            return [event.error.to_dict()]
        choice = self.choice(event)
        return [] if choice is None else [self.chunk([choice])]

    def choice(self, event: Event) -> Payload | None:
        raise NotImplementedError


class ChatChunks(Chunks):
    object = "chat.completion.chunk"
    prefix = "chatcmpl"

    def __init__(self, model: str, fingerprint: str) -> None:
        super().__init__(model, fingerprint)
        self._spoke: set[int] = set()  # choices whose role was said (their first delta)

    def choice(self, event: Event) -> Payload | None:
        if isinstance(event, Finish):
            return {
                "index": event.choice,
                "delta": {},
                "logprobs": None,
                "finish_reason": event.reason,
            }
        delta: Payload
        logprobs = None
        if isinstance(event, TextDelta):
            delta = {"content": event.text}
            if event.logprobs is not None:
                logprobs = {"content": event.logprobs}
        elif isinstance(event, ReasoningDelta):
            delta = {"reasoning_content": event.text}
        elif isinstance(event, ToolCallStart):
            function = {"name": event.name, "arguments": ""}
            call = {
                "index": event.call,
                "id": event.call_id,
                "type": "function",
                "function": function,
            }
            delta = {"tool_calls": [call]}
        elif isinstance(event, ToolArgumentsDelta):
            delta = {"tool_calls": [{"index": event.call, "function": {"arguments": event.text}}]}
        else:
            return None
        if event.choice not in self._spoke:
            self._spoke.add(event.choice)
            delta = {"role": "assistant", **delta}
        return {"index": event.choice, "delta": delta, "logprobs": logprobs, "finish_reason": None}


class CompletionChunks(Chunks):
    object = "text_completion"
    prefix = "cmpl"

    def choice(self, event: Event) -> Payload | None:
        if isinstance(event, TextDelta):
            text, logprobs, reason = event.text, event.logprobs, None
        elif isinstance(event, Finish):
            text, logprobs, reason = "", None, event.reason
        else:
            return None
        return {"index": event.choice, "text": text, "logprobs": logprobs, "finish_reason": reason}
