"""Reasoning models: their thinking apart from the answer, counted, and budgeted.

DeepSeek-R1-style models write ``<think> … </think>`` before the answer. llama.cpp's chat
parser usually splits that into ``reasoning_content`` itself (its reasoning format
"auto"); when it does not (a template it does not know, or thinking left in the content),
corral splits the text here, also across stream chunks whose boundaries cut a tag.
``reasoning_effort`` becomes a thinking budget that llama.cpp enforces by forcing the end
of the thinking section once the budget is spent; ``max_completion_tokens`` still bounds
thinking and answer together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from corral.catalog.schema import ModelSpec
from corral.core.errors import UnsupportedParameterError

OPEN, CLOSE = "<think>", "</think>"
EFFORT_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
DEFAULT_EFFORT = "medium"

Part = tuple[Literal["reasoning", "content"], str]


def is_reasoning(spec: ModelSpec) -> bool:
    return "reasoning" in spec.capabilities


def check_effort(spec: ModelSpec, effort: str | None) -> None:
    if effort is not None and not is_reasoning(spec):
        raise UnsupportedParameterError(
            f"`reasoning_effort` is only supported by reasoning models; `{spec.id}` is not one "
            "(see the `reasoning` capability in /v1/models).",
            param="reasoning_effort",
        )


def thinking_budget(effort: str | None, output_limit: int | None) -> int:
    """Tokens the model may think; the answer needs room too, so at most 3/4 of the limit."""
    budget = EFFORT_BUDGET[effort or DEFAULT_EFFORT]
    if output_limit is not None:
        budget = min(budget, max(1, output_limit * 3 // 4))
    return budget


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split a whole output into (reasoning, answer).

    ``<think>a</think>b`` and ``a</think>b`` (the template opened the tag) give ("a", "b");
    an unclosed ``<think>a`` gives ("a", "") (the limit cut the thinking); text without
    tags is all answer.
    """
    stripped = text.lstrip()
    if CLOSE in text:
        head, _, tail = text.partition(CLOSE)
        head = head.lstrip()
        head = head.removeprefix(OPEN)
        return head.strip(), tail.lstrip()
    if stripped.startswith(OPEN):
        return stripped.removeprefix(OPEN).strip(), ""
    return None, text


@dataclass
class StreamSplitter:
    """Splits streamed content deltas into reasoning and answer parts.

    Holds back only what could be the start of a tag, so text flows as it arrives.
    """

    state: Literal["start", "reasoning", "gap", "content"] = "start"
    pending: str = ""
    reasoning_parts: int = field(default=0)

    def feed(self, delta: str) -> list[Part]:
        self.pending += delta
        out: list[Part] = []
        while self.pending:
            if self.state == "start":
                head = self.pending.lstrip()
                if not head:
                    return out
                if head.startswith(OPEN):
                    self.pending = head.removeprefix(OPEN).lstrip("\n")
                    self.state = "reasoning"
                    continue
                if OPEN.startswith(head):
                    return out  # maybe a tag, cut by the chunk boundary
                self.state = "content"
                continue
            if self.state == "gap":  # whitespace between the thinking and the answer
                self.pending = self.pending.lstrip()
                if self.pending:
                    self.state = "content"
                continue
            if self.state == "content":
                out.append(("content", self.pending))
                self.pending = ""
                return out
            # reasoning: up to the closing tag
            idx = self.pending.find(CLOSE)
            if idx >= 0:
                if idx:
                    out.append(("reasoning", self.pending[:idx]))
                self.pending = self.pending[idx + len(CLOSE) :]
                self.state = "gap"
                continue
            keep = _partial_suffix(self.pending, CLOSE)
            emit = self.pending[: len(self.pending) - keep]
            if emit:
                out.append(("reasoning", emit))
            self.pending = self.pending[len(emit) :]
            return out
        return out

    def flush(self) -> list[Part]:
        rest, self.pending = self.pending, ""
        if not rest or self.state == "gap":
            return []
        return [("reasoning" if self.state == "reasoning" else "content", rest)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
