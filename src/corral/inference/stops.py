"""Stop sequences matched by corral rather than the engine, for callers that must say which
one ended the text (Anthropic's ``stop_sequence``): llama.cpp's OpenAI-compatible answer
reports ``finish_reason: stop`` for an end-of-turn token and a stop word alike, and names
neither.

The engine's stream is read through ``scan_stops``: text that could begin a stop sequence
is held back, a match cuts the text there, ends the finish chunk with the sequence, and
closes the engine's stream (which stops the generation). The engine sends no usage then,
so it is made here: the prompt counted exactly, one token per content chunk (llama.cpp
streams one token a chunk).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

Chunk = dict[str, Any]


@dataclass
class StopScanner:
    stops: list[str]
    pending: str = ""
    found: str | None = None

    def feed(self, text: str) -> str:
        """What of the text so far can go out: all but a tail that could begin a stop
        sequence; on a match, the text before it (and ``found`` names the sequence)."""
        self.pending += text
        matches = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if matches:
            at, self.found = min(matches)
            out, self.pending = self.pending[:at], ""
            return out
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
            default=0,
        )
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def _content_chunk(template: Chunk, text: str) -> Chunk:
    return {**template, "choices": [{"index": 0, "delta": {"content": text}}]}


async def scan_stops(
    stream: AsyncIterator[Chunk], stops: list[str], count_prompt: Callable[[], Awaitable[int]]
) -> AsyncIterator[Chunk]:
    """One choice's engine stream with ``stops`` applied here (see the module's doc)."""
    scanner = StopScanner(stops)
    tokens = 0
    async with aclosing(stream) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            choice = (chunk.get("choices") or [None])[0]
            if choice is None:
                yield chunk
                continue
            delta = choice.get("delta") or {}
            tokens += 1
            if choice.get("finish_reason"):
                if scanner.pending:
                    yield _content_chunk(chunk, scanner.flush())
                yield chunk
                continue
            if delta.get("content"):
                delta["content"] = scanner.feed(delta["content"])
            if scanner.found is None:
                yield chunk
                continue
            yield chunk
            finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield {**chunk, "choices": [{**finish, "stop_sequence": scanner.found}]}
            usage = {"prompt_tokens": await count_prompt(), "completion_tokens": tokens}
            usage["total_tokens"] = usage["prompt_tokens"] + tokens
            yield {**chunk, "choices": [], "usage": usage}
            return
