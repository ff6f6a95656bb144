"""The generation core's stream: a small closed set of typed events.

Every dialect (Chat Completions, legacy completions, Responses, Messages) is a presenter
of this stream, and metering reads usage from it by type. An engine's OpenAI-shaped
chunk is read into events once (``chat_events``), in the core; nothing above the core
sees a chunk dict.

``choice`` is the choice's index (``n`` > 1 on Chat Completions; 0 elsewhere), ``call``
a tool call's index within its choice's answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from corral.core.errors import CorralError
from corral.protocol.chat import ChatCompletion
from corral.protocol.common import Usage


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0
    # Chat's per-token entries (``logprobs.content``), or legacy completions' logprobs.
    logprobs: Any = None


@dataclass(slots=True)
class ReasoningDelta:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallStart:
    call_id: str
    name: str
    call: int
    choice: int = 0


@dataclass(slots=True)
class ToolArgumentsDelta:
    text: str
    call: int
    choice: int = 0


@dataclass(slots=True)
class Finish:
    """A choice's end: ``stop``, ``length``, ``tool_calls`` (``stop_sequence``: the one
    matched, when corral matched stop sequences itself)."""

    reason: str
    choice: int = 0
    stop_sequence: str | None = None


@dataclass(slots=True)
class ServerTool:
    """A tool corral runs itself, at a stage of its run (``searching``, ``completed``;
    ``listed``, ``calling``, ``called``, ``approval``): ``item`` is the Responses output
    item for it (``file_search_call``, ``mcp_list_tools``, ``mcp_call``,
    ``mcp_approval_request``). The Responses presenter says them all; the Messages
    presenter says MCP calls (as ``mcp_tool_use`` and ``mcp_tool_result`` blocks)."""

    stage: str
    item: Any
    sources: list[Any] = field(default_factory=list)  # what an answer may cite


@dataclass(slots=True)
class UsageReport:
    """Every token of the answer, once, after every choice finished."""

    usage: Usage


@dataclass(slots=True)
class Failed:
    """The stream broke after it started (before that, the error is raised, so an HTTP
    status can still say so). Always the last event."""

    error: CorralError


Event = (
    TextDelta
    | ReasoningDelta
    | ToolCallStart
    | ToolArgumentsDelta
    | Finish
    | ServerTool
    | UsageReport
    | Failed
)
Delta = TextDelta | ReasoningDelta | ToolCallStart | ToolArgumentsDelta


async def started(stream: AsyncGenerator[Event | None, None]) -> AsyncIterator[Event]:
    """``stream`` run to its first ``yield None``, which it says inside the ``try`` whose
    ``finally`` lets go of what it holds (an admission slot, a metering ticket).

    An async generator never started runs nothing when closed or dropped: a stream
    handed over unstarted and then abandoned (a background response cancelled before
    its task ran, a request cancelled while its response was being stored) kept its
    slot for the process's life. Started, it is closed by ``aclose`` or, dropped, by the
    event loop's finalizer of async generators. The first step awaits nothing, so this
    adds no point where a cancel can land."""
    if await anext(stream) is not None:
        raise RuntimeError("a stream must say `yield None` first (see `started`)")
    return cast(AsyncIterator[Event], stream)


async def aclose(stream: AsyncIterator[Event]) -> None:
    """Close an event stream now (an async generator's cleanup, the engine's request
    with it), not when the garbage collector's finalizer gets to it."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def chat_events(choice: dict[str, Any], index: int) -> list[Event]:
    """One choice of an engine's chat chunk as events (the engine's own parse of native
    tool calls included)."""
    events: list[Event] = []
    delta = choice.get("delta")
    if delta:
        if thinking := delta.get("reasoning_content"):
            events.append(ReasoningDelta(thinking, index))
        if text := delta.get("content"):
            logprobs = choice.get("logprobs")
            events.append(TextDelta(text, index, logprobs and logprobs.get("content")))
        for call in delta.get("tool_calls") or ():
            events += _call_events(call, index)
    if reason := choice.get("finish_reason"):
        events.append(Finish(reason, index, choice.get("stop_sequence")))
    return events


def completion_events(completion: ChatCompletion) -> list[Event]:
    """A whole answer's first choice as the events its stream would have said: a
    dialect then has one translation for both. Text goes with no call (a call's answer
    is the call), an empty text still opens a message."""
    choice = completion.choices[0]
    message = choice.message
    events: list[Event] = []
    if message.reasoning_content:
        events.append(ReasoningDelta(message.reasoning_content))
    if message.content is not None and not message.tool_calls:
        logprobs = (choice.logprobs or {}).get("content")
        events.append(TextDelta(message.content, 0, logprobs))
    for at, call in enumerate(message.tool_calls or ()):
        events.append(ToolCallStart(call.id, call.function.name, at))
        events.append(ToolArgumentsDelta(call.function.arguments, at))
    events.append(Finish(choice.finish_reason or "stop"))
    return [*events, UsageReport(completion.usage)]


def _call_events(call: dict[str, Any], index: int) -> list[Event]:
    function = call.get("function") or {}
    at = int(call.get("index", 0))
    events: list[Event] = []
    if call.get("id"):
        events.append(ToolCallStart(call["id"], function.get("name") or "", at, index))
    if arguments := function.get("arguments"):
        events.append(ToolArgumentsDelta(arguments, at, index))
    return events


__all__ = [
    "Delta",
    "Event",
    "Failed",
    "Finish",
    "ReasoningDelta",
    "ServerTool",
    "TextDelta",
    "ToolArgumentsDelta",
    "ToolCallStart",
    "UsageReport",
    "aclose",
    "chat_events",
    "completion_events",
]
