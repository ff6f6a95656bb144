"""The core's chat chunks as the Responses API's typed stream events, in the order the
reference (and the ``openai`` SDK's stream accumulator) expects:

    response.created, response.in_progress,
    per output item: response.output_item.added,
      message:   response.content_part.added, response.output_text.delta …,
                 response.output_text.done, response.content_part.done
      reasoning: response.reasoning_text.delta …, response.reasoning_text.done
      function:  response.function_call_arguments.delta …, .done
      custom:    response.custom_tool_call_input.delta …, .done
    response.output_item.done, and last response.completed (or response.incomplete).

Every event has a ``sequence_number``. An error mid-stream is an ``error`` event, then
``response.failed``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import count
from typing import Any

from corral.core.errors import CorralError
from corral.core.ids import new_id
from corral.inference.responses.tools import ToolSet, partial_input
from corral.protocol.common import Usage
from corral.protocol.responses import (
    CustomToolCallItem,
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    OutputItem,
    OutputMessage,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    ResponseObject,
    ResponseUsage,
)

log = logging.getLogger(__name__)

Event = dict[str, Any]
Chunk = dict[str, Any]


def usage_of(usage: Usage) -> ResponseUsage:
    """Chat's usage in the Responses API's words."""
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.prompt_tokens_details.cached_tokens
        ),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(
            reasoning_tokens=usage.completion_tokens_details.reasoning_tokens
        ),
        total_tokens=usage.total_tokens,
    )


class EventStream:
    def __init__(
        self, response: ResponseObject, keep: Callable[[ResponseObject], Awaitable[None]]
    ) -> None:
        self.response = response
        self._keep = keep
        self._seq = count()
        self._open: OutputItem | None = None
        self._text: list[str] = []
        self._finish: str | None = None
        self._tools = ToolSet()
        self._input_sent = 0  # an open custom call: input characters sent as deltas
        self._seal: Callable[[str], str] | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        return {"type": kind, "sequence_number": next(self._seq), **fields}

    def _snapshot(self, kind: str) -> Event:
        return self._event(kind, response=self.response.model_dump(mode="json"))

    @property
    def _index(self) -> int:
        return len(self.response.output) - 1

    def _add(self, item: OutputItem) -> Event:
        self.response.output.append(item)
        return self._event(
            "response.output_item.added",
            output_index=self._index,
            item=item.model_dump(mode="json"),
        )

    def _open_message(self) -> list[Event]:
        item = OutputMessage(id=new_id("msg", "_"), status="in_progress")
        events = [self._add(item)]
        part = OutputText(text="")
        events.append(self._part("response.content_part.added", item.id, part))
        self._open, self._text = item, []
        return events

    def _part(self, kind: str, item_id: str, part: OutputText) -> Event:
        return self._event(
            kind,
            item_id=item_id,
            output_index=self._index,
            content_index=0,
            part=part.model_dump(mode="json"),
        )

    def _open_reasoning(self) -> list[Event]:
        item = ReasoningItem(id=new_id("rs", "_"), status="in_progress")
        self._open, self._text = item, []
        return [self._add(item)]

    def _close(self) -> list[Event]:
        item, text = self._open, "".join(self._text)
        if item is None:
            return []
        self._open = None
        if isinstance(item, CustomToolCallItem):
            item.input = partial_input(text)
            where = {"item_id": item.id, "output_index": self._index}
            kind = "response.custom_tool_call_input.done"
            return [self._event(kind, input=item.input, **where), self._done(item)]
        if isinstance(item, FunctionCallItem):
            item.arguments, item.status = text, "completed"
            where = {"item_id": item.id, "output_index": self._index}
            done = self._event(
                "response.function_call_arguments.done", arguments=text, name=item.name, **where
            )
            return [done, self._done(item)]
        where = {"item_id": item.id, "output_index": self._index, "content_index": 0}
        events = []
        if isinstance(item, OutputMessage):
            part = OutputText(text=text)
            item.content = [part]
            item.status = "incomplete" if self._finish == "length" else "completed"
            events.append(self._event("response.output_text.done", text=text, logprobs=[], **where))
            events.append(self._part("response.content_part.done", item.id, part))
        else:
            item.content, item.status = [ReasoningText(text=text)], "completed"
            item.encrypted_content = self._seal(text) if self._seal is not None else None
            events.append(self._event("response.reasoning_text.done", text=text, **where))
        events.append(self._done(item))
        return events

    def _done(self, item: OutputItem) -> Event:
        return self._event(
            "response.output_item.done", output_index=self._index, item=item.model_dump(mode="json")
        )

    def _delta(self, kind: str, text: str) -> Event:
        assert self._open is not None
        self._text.append(text)
        where = {"item_id": self._open.id, "output_index": self._index, "content_index": 0}
        return self._event(kind, delta=text, **where)

    def _open_call(self, call_id: str, chat_name: str) -> Event:
        namespace, name = self._tools.call_name(chat_name)
        item: FunctionCallItem | CustomToolCallItem
        if self._tools.is_custom(chat_name):
            item = CustomToolCallItem(
                id=new_id("ctc", "_"), call_id=call_id, name=name, namespace=namespace, input=""
            )
        else:
            item = FunctionCallItem(
                id=new_id("fc", "_"),
                call_id=call_id,
                name=name,
                namespace=namespace,
                arguments="",
                status="in_progress",
            )
        self._open, self._text, self._input_sent = item, [], 0
        return self._add(item)

    def _calls(self, calls: list[dict[str, Any]]) -> list[Event]:
        """A call's start opens a function_call (or custom_tool_call) item; later pieces
        are its arguments (a custom call's: its input, decoded as it comes)."""
        events: list[Event] = []
        for call in calls:
            function = call.get("function") or {}
            if call.get("id"):
                events += self._close()
                events.append(self._open_call(call["id"], function.get("name", "")))
            arguments = function.get("arguments") or ""
            if not arguments or not isinstance(self._open, FunctionCallItem | CustomToolCallItem):
                continue
            self._text.append(arguments)
            where = {"item_id": self._open.id, "output_index": self._index}
            if isinstance(self._open, FunctionCallItem):
                kind = "response.function_call_arguments.delta"
                events.append(self._event(kind, delta=arguments, **where))
                continue
            text = partial_input("".join(self._text))
            if len(text) > self._input_sent:
                delta, self._input_sent = text[self._input_sent :], len(text)
                kind = "response.custom_tool_call_input.delta"
                events.append(self._event(kind, delta=delta, **where))
        return events

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        events: list[Event] = []
        if delta.get("reasoning_content"):
            if not isinstance(self._open, ReasoningItem):
                events += [*self._close(), *self._open_reasoning()]
            events.append(self._delta("response.reasoning_text.delta", delta["reasoning_content"]))
        if delta.get("content"):
            if not isinstance(self._open, OutputMessage):
                events += [*self._close(), *self._open_message()]
            events.append(self._delta("response.output_text.delta", delta["content"]))
        if delta.get("tool_calls"):
            events += self._calls(delta["tool_calls"])
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return events

    async def run(
        self,
        chunks: AsyncIterator[Chunk],
        tools: ToolSet | None = None,
        seal: Callable[[str], str] | None = None,
    ) -> AsyncIterator[Event]:
        """``tools``: how a core tool call is reported (namespace, name, custom or not);
        ``seal``: encrypts a reasoning item's text for the client, when it asked."""
        self._tools, self._seal = tools or ToolSet(), seal
        yield self._snapshot("response.created")
        yield self._snapshot("response.in_progress")
        try:
            async for chunk in chunks:
                if "usage" in chunk and not chunk.get("choices"):
                    self.response.usage = usage_of(Usage.model_validate(chunk["usage"]))
                    continue
                for choice in chunk.get("choices") or ():
                    for event in self._choice(choice):
                        yield event
        except Exception as exc:
            if not isinstance(exc, CorralError):
                log.exception("response stream failed")
                exc = CorralError("The server had an error while streaming.")
            for event in self._fail(exc):
                yield event
            return
        for event in self._close():
            yield event
        if self._finish == "length":
            self.response.status = "incomplete"
            self.response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
        else:
            self.response.status = "completed"
        await self._keep(self.response)
        yield self._snapshot(f"response.{self.response.status}")

    def _fail(self, exc: CorralError) -> list[Event]:
        code = exc.code or "server_error"
        self.response.status = "failed"
        self.response.error = {"code": code, "message": exc.message}
        return [
            self._event("error", code=code, message=exc.message, param=exc.param),
            self._snapshot("response.failed"),
        ]
