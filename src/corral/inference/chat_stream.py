"""A chat request's stream: the engine's chunks read once into the core's typed events.

One frame per token here, whatever the request asks for: the choices' streams (merged
only when ``n`` > 1), reasoning split from the answer, constrained tool output said as
content and calls, a second pass in words for an ``auto`` answer that said nothing, and
the usage of every pass at the end (``UsageReport``, always sent: metering reads it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from corral.core.ids import new_id
from corral.engines.base import Body, Engine
from corral.inference.reasoning import StreamSplitter
from corral.inference.requests import added_usage, merge_usage, with_reasoning
from corral.inference.stops import scan_stops
from corral.inference.streaming import Chunk, merge_indexed
from corral.inference.telemetry import RequestTimer
from corral.inference.tool_stream import ToolStream, WordsGuard
from corral.inference.tools import ToolPlan, call_key, in_words
from corral.protocol.common import Usage
from corral.protocol.events import (
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
    chat_events,
)

# What to do with the answer's usage before it is reported (a prediction's tokens).
Finalize = Callable[[Usage, str], Awaitable[None]]


@dataclass
class ToolText:
    """A choice's constrained output as it streams, said as events: content as it is
    decoded; a call's name, then its arguments as they are decoded, unless a call of
    that name was already made (in this answer, or with its result in the history):
    such a call is held until whole and sent only if it is not a repeat."""

    plan: ToolPlan
    choice: int = 0
    tokens: int = 0  # llama.cpp streams a token a chunk
    stream: ToolStream = field(default_factory=ToolStream)
    names: dict[int, str] = field(default_factory=dict)
    arguments: dict[int, list[str]] = field(default_factory=dict)
    live: dict[int, int] = field(default_factory=dict)  # streamed calls: their index out
    said: set[tuple[str, str]] = field(default_factory=set)  # ``call_key`` of calls sent
    sent: int = 0
    content: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[Event]:
        self.tokens += 1 if text else 0
        events: list[Event] = []
        for piece in self.stream.feed(text):
            if piece.kind == "content":
                self.content.append(piece.text)
                events.append(TextDelta(piece.text, self.choice))
            elif piece.kind == "call":
                events += self._start(piece.index, piece.text)
            else:
                self.arguments.setdefault(piece.index, []).append(piece.text)
                events += self._arguments(piece.index, piece.text)
        return events

    def _start(self, index: int, name: str) -> list[Event]:
        self.names[index] = name
        made = {n for n, _ in self.said} | {n for n, _ in self.plan.answered}
        if name in made:
            return []  # held: it may be a repeat
        self.live[index] = self.sent
        return self._call(name, "")

    def _arguments(self, index: int, text: str) -> list[Event]:
        arguments = self._whole(index)
        key = None if arguments is None else call_key(self.names[index], arguments)
        if index in self.live:
            if key is not None:
                self.said.add(key)
            return [ToolArgumentsDelta(text, self.live[index], self.choice)]
        if key is None or key in self.said or key in self.plan.answered:
            return []
        self.said.add(key)
        assert arguments is not None
        return self._call(self.names[index], arguments)

    def _call(self, name: str, arguments: str) -> list[Event]:
        at = self.sent
        self.sent += 1
        start: list[Event] = [ToolCallStart(new_id("call"), name, at, self.choice)]
        return [*start, ToolArgumentsDelta(arguments, at, self.choice)] if arguments else start

    def _whole(self, index: int) -> str | None:
        """The call's arguments once they are whole."""
        raw = "".join(self.arguments[index])
        if not raw.endswith("}"):
            return None
        try:
            return json.dumps(json.loads(raw))
        except ValueError:
            return None  # an inner object closed, not the arguments

    @property
    def empty(self) -> bool:
        """``auto`` said nothing: no call and no words (see ``ToolPlan.needs_answer``)."""
        return self.plan.mode == "auto" and not self.sent and not "".join(self.content).strip()

    def finish(self, reason: str) -> Finish:
        """The choice's end: ``tool_calls`` when it called, unless it was cut short."""
        called = self.sent and reason != "length"
        return Finish("tool_calls" if called else reason, self.choice)


def split_events(events: list[Event], splitter: StreamSplitter) -> tuple[list[Event], int]:
    """Thinking written in the text moved to reasoning deltas (a model whose template
    does not split it); returns the events and the reasoning tokens among them
    (llama.cpp streams a token a chunk)."""
    out: list[Event] = []
    tokens = 0
    for event in events:
        if isinstance(event, ReasoningDelta):
            tokens += 1  # already split by the engine
            out.append(event)
        elif isinstance(event, TextDelta):
            parts = splitter.feed(event.text)
            thinking = "".join(t for kind, t in parts if kind == "reasoning")
            answer = "".join(t for kind, t in parts if kind == "content")
            if thinking:
                out.append(ReasoningDelta(thinking, event.choice))
                tokens += 1
            if answer:
                out.append(TextDelta(answer, event.choice, event.logprobs))
        elif isinstance(event, Finish):
            for kind, text in splitter.flush():
                cls = ReasoningDelta if kind == "reasoning" else TextDelta
                out.append(cls(text, event.choice))
            out.append(event)
        else:
            out.append(event)
    return out, tokens


@dataclass
class ChatRun:
    """What a stream keeps of its choices while it runs."""

    plan: ToolPlan
    bodies: list[Body]
    reasoning: bool
    timer: RequestTimer
    keep_text: bool = False  # the answer's text is needed at the end (a prediction)
    usages: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)  # a second pass's usage
    tools: list[ToolText] = field(default_factory=list)
    guards: list[WordsGuard] = field(default_factory=list)  # answers in words
    splitters: list[StreamSplitter] = field(default_factory=list)
    reasoning_tokens: int = 0
    text: list[str] = field(default_factory=list)
    words: tuple[int, Body] | None = None  # a second pass to run now

    def __post_init__(self) -> None:
        n = len(self.bodies)
        self.usages, self.extra = [{} for _ in range(n)], [{} for _ in range(n)]
        self.tools = [ToolText(self.plan, i) for i in range(n)]
        self.guards = [WordsGuard() for _ in range(n)]
        self.splitters = [StreamSplitter() for _ in range(n)] if self.reasoning else []

    def feed(self, index: int, chunk: Chunk, usages: list[dict[str, Any]]) -> list[Event]:
        """One engine chunk (of the first pass: ``usages`` is ``self.usages``, of a
        second: ``self.extra``) as events."""
        if "usage" in chunk:
            usages[index] = chunk["usage"]
            self.timer.engine_timings(chunk.get("timings"))
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            events += chat_events(choice, index)
        if self.splitters and events:
            events, tokens = split_events(events, self.splitters[index])
            self.reasoning_tokens += tokens
        if self.keep_text:
            self.text += [e.text for e in events if isinstance(e, TextDelta)]
        if self.plan.mode == "off" or self.plan.native:
            return events  # the engine parsed any calls
        if self.plan.mode == "words" or usages is self.extra:
            return self._spoken(index, events)
        return self._constrained(index, events)

    def _spoken(self, index: int, events: list[Event]) -> list[Event]:
        """An answer in words under the tools prompt: said as it comes, unless it opens
        with corral's wrapper (``WordsGuard``)."""
        if self.plan.answer_format is not None:
            return events  # the request's own JSON answer
        guard, out = self.guards[index], list[Event]()
        for event in events:
            if isinstance(event, TextDelta):
                text = guard.feed(event.text)
                logprobs = event.logprobs if text == event.text else None
                out += [TextDelta(text, event.choice, logprobs)] if text else []
            elif isinstance(event, Finish):
                rest = guard.flush()
                out += [TextDelta(rest, event.choice), event] if rest else [event]
            else:
                out.append(event)
        return out

    def _constrained(self, index: int, events: list[Event]) -> list[Event]:
        """Constrained tool output is JSON: its content is said as it is decoded, each
        call once it is whole (a repeated one is dropped)."""
        out: list[Event] = []
        state = self.tools[index]
        for event in events:
            if isinstance(event, TextDelta):
                out += state.feed(event.text)
            elif isinstance(event, Finish):
                spent = {"completion_tokens": state.tokens}  # its usage may come later
                words = in_words(self.bodies[index], self.plan, spent) if state.empty else None
                if words is None:
                    out.append(state.finish(event.reason))
                else:
                    self.words = (index, {**words, "stream_options": {"include_usage": True}})
            else:
                out.append(event)
        return out

    def usage(self) -> Usage:
        pairs = zip(self.usages, self.extra, strict=True)
        usages = [added_usage(u, e) if e else u for u, e in pairs]
        return with_reasoning(merge_usage(usages), self.reasoning_tokens)


async def stream_chat(
    engine: Engine,
    run: ChatRun,
    stops: list[str] | None,
    finalize: Finalize | None,
    leave: Callable[[], None],
) -> AsyncGenerator[Event | None, None]:
    """The request's events, ending with its usage; ``leave`` when it ends, however
    (hand it over ``started``: it says ``None`` first)."""
    timer = run.timer
    status = "error"
    try:
        yield None
        # Inside the try: an engine may refuse as the stream is made (an adapter still
        # loading), and the slot must be let go then too.
        streams = [
            engine.chat_stream({**b, "stream_options": {"include_usage": True}}) for b in run.bodies
        ]
        if stops:
            pairs = zip(streams, run.bodies, strict=True)
            streams = [scan_stops(s, stops, partial(engine.count_chat_tokens, b)) for s, b in pairs]
        single = len(streams) == 1
        source: AsyncIterator[Any] = streams[0] if single else merge_indexed(streams)
        async for item in source:
            index, chunk = (0, item) if single else item
            for event in run.feed(index, chunk, run.usages):
                yield event
                if type(event) is not Finish:  # timed once it went out: the client first
                    timer.token()
            if run.words is not None:
                index, words = run.words
                run.words = None
                async for chunk in engine.chat_stream(words):
                    for event in run.feed(index, chunk, run.extra):
                        yield event
                        if type(event) is not Finish:
                            timer.token()
        usage = run.usage()
        if finalize is not None:
            await finalize(usage, "".join(run.text))
        yield UsageReport(usage)
        status = "ok"
    finally:
        leave()
        timer.finish(merge_usage(run.usages).model_dump() if run.usages[0] else None, status)
