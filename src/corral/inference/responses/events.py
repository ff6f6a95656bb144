"""The core's events as the Responses API's typed stream events, in the order the
reference (and the ``openai`` SDK's stream accumulator) expects:

    response.created, response.in_progress,
    per output item: response.output_item.added,
      message:   response.content_part.added, response.output_text.delta …,
                 response.output_text.done, response.content_part.done
      reasoning: response.reasoning_text.delta …, response.reasoning_text.done
      function:  response.function_call_arguments.delta …, .done
      custom:    response.custom_tool_call_input.delta …, .done
      file search (corral's): response.file_search_call.in_progress, .searching, .completed
      MCP (corral's): response.mcp_list_tools.in_progress, .completed;
                 response.mcp_call_arguments.delta, .done, response.mcp_call.in_progress,
                 .completed (or .failed); an mcp_approval_request is added and done
    response.output_item.done, and last response.completed (or response.incomplete).

Every event has a ``sequence_number``. An error mid-stream (the core's ``Failed``) is an
``error`` event, then ``response.failed``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from itertools import count
from typing import Any

from corral.core.errors import CorralError
from corral.core.ids import new_id
from corral.inference.responses.tools import InputDecoder, ToolSet, partial_input
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
from corral.protocol.responses import (
    CustomToolCallItem,
    FileSearchCallItem,
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    McpCallItem,
    McpListToolsItem,
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
        self,
        response: ResponseObject,
        keep: Callable[[ResponseObject], Awaitable[None]],
        tools: ToolSet | None = None,
        seal: Callable[[str], str] | None = None,
    ) -> None:
        """``tools``: how a core tool call is reported (namespace, name, custom or not);
        ``seal``: encrypts a reasoning item's text for the client, when it asked."""
        self.response = response
        self._keep = keep
        self._seq = count()
        self._open: OutputItem | None = None
        self._text: list[str] = []
        self._logprobs: list[Any] = []  # the open message's, when asked for
        self._sources: list[tuple[str, str]] = []  # files a search found: (id, filename)
        self._finish: str | None = None
        self._tools = tools or ToolSet()
        self._decoder = InputDecoder()  # an open custom call's input, as it streams
        self._seal = seal

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
        self._open, self._text, self._logprobs = item, [], []
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
            part = OutputText(text=text, logprobs=self._logprobs, annotations=self._cites(text))
            item.content = [part]
            item.status = "incomplete" if self._finish == "length" else "completed"
            done = self._event(
                "response.output_text.done", text=text, logprobs=part.logprobs, **where
            )
            events.append(done)
            events.append(self._part("response.content_part.done", item.id, part))
        elif isinstance(item, ReasoningItem):
            item.content, item.status = [ReasoningText(text=text)], "completed"
            item.encrypted_content = self._seal(text) if self._seal is not None else None
            events.append(self._event("response.reasoning_text.done", text=text, **where))
        events.append(self._done(item))
        return events

    def _cites(self, text: str) -> list[Any]:
        """The files a search found, cited at the answer's end (the model writes no
        markers of its own to place them by)."""
        return [
            {"type": "file_citation", "file_id": file_id, "filename": name, "index": len(text)}
            for file_id, name in self._sources
        ]

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
        self._open, self._text, self._decoder = item, [], InputDecoder()
        return self._add(item)

    def _call_arguments(self, text: str) -> list[Event]:
        """A piece of the open call's arguments (a custom call's: its input, decoded as
        it comes)."""
        if not text or not isinstance(self._open, FunctionCallItem | CustomToolCallItem):
            return []
        self._text.append(text)
        where = {"item_id": self._open.id, "output_index": self._index}
        if isinstance(self._open, FunctionCallItem):
            return [self._event("response.function_call_arguments.delta", delta=text, **where)]
        delta = self._decoder.feed(text)
        if not delta:
            return []
        return [self._event("response.custom_tool_call_input.delta", delta=delta, **where)]

    def start(self) -> list[Event]:
        return [self._snapshot("response.created"), self._snapshot("response.in_progress")]

    def feed(self, event: CoreEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            opened = self._reopen(OutputMessage)
            if event.logprobs:
                self._logprobs += event.logprobs
            return [*opened, self._delta("response.output_text.delta", event.text)]
        if isinstance(event, ReasoningDelta):
            opened = self._reopen(ReasoningItem)
            return [*opened, self._delta("response.reasoning_text.delta", event.text)]
        if isinstance(event, ToolArgumentsDelta):
            return self._call_arguments(event.text)
        if isinstance(event, ToolCallStart):
            return [*self._close(), self._open_call(event.call_id, event.name)]
        if isinstance(event, ServerTool):
            return self._server_tool(event)
        if isinstance(event, Finish):
            self._finish = event.reason
        elif isinstance(event, UsageReport):
            self.response.usage = usage_of(event.usage)
        elif isinstance(event, Failed):
            return self._fail(event.error)
        return []

    def _server_tool(self, event: ServerTool) -> list[Event]:
        """A tool corral runs: its item opens, says its stages, and closes."""
        item = event.item
        if isinstance(item, FileSearchCallItem):
            return self._file_search(event, item)
        if isinstance(item, McpCallItem):
            return self._mcp_call(event, item)
        events = [*self._close(), self._add(item)]
        if isinstance(item, McpListToolsItem):
            where = {"item_id": item.id, "output_index": self._index}
            events.append(self._event("response.mcp_list_tools.in_progress", **where))
            events.append(self._event("response.mcp_list_tools.completed", **where))
        return [*events, self._done(item)]  # and an approval request: said whole

    def _opened(self, item: OutputItem, status: str) -> list[Event]:
        """A server tool's item added as it starts (the copy said is in progress; the
        response holds the item itself, which the tool completes)."""
        events = self._close()
        events.append(self._add(item.model_copy(update={"status": status})))
        self.response.output[-1] = item
        return events

    def _closed(self, kind: str, item: OutputItem) -> list[Event]:
        index = self.response.output.index(item)
        where = {"item_id": item.id, "output_index": index}
        done = self._event(
            "response.output_item.done", output_index=index, item=item.model_dump(mode="json")
        )
        return [self._event(kind, **where), done]

    def _file_search(self, event: ServerTool, item: FileSearchCallItem) -> list[Event]:
        """A search: in progress, searching, then completed with its results; the files
        it found are what the answer cites."""
        kind = "response.file_search_call"
        if event.stage == "searching":
            events = self._opened(item, "in_progress")
            where = {"item_id": item.id, "output_index": self._index}
            return [
                *events,
                self._event(f"{kind}.in_progress", **where),
                self._event(f"{kind}.searching", **where),
            ]
        self._sources += [s for s in event.sources if s not in self._sources]
        return self._closed(f"{kind}.completed", item)

    def _mcp_call(self, event: ServerTool, item: McpCallItem) -> list[Event]:
        """An MCP call: its arguments (whole: the model's call was held back until it
        ended), in progress, then completed or failed with its output or error."""
        if event.stage == "calling":
            events = self._opened(item, "in_progress")
            where = {"item_id": item.id, "output_index": self._index}
            return [
                *events,
                self._event("response.mcp_call_arguments.delta", delta=item.arguments, **where),
                self._event("response.mcp_call_arguments.done", arguments=item.arguments, **where),
                self._event("response.mcp_call.in_progress", **where),
            ]
        ended = "failed" if item.status == "failed" else "completed"
        return self._closed(f"response.mcp_call.{ended}", item)

    def _reopen(self, kind: type[OutputMessage | ReasoningItem]) -> list[Event]:
        """The item a delta of this kind goes to: the open one, or a new one."""
        if isinstance(self._open, kind):
            return []
        closed = self._close()
        return [
            *closed,
            *(self._open_message() if kind is OutputMessage else self._open_reasoning()),
        ]

    async def end(self) -> list[Event]:
        """The last events: the open item closed, the response kept and completed (a
        failed one said so already)."""
        if self.response.status == "failed":
            return []
        events = self._close()
        if self._finish == "length":
            self.response.status = "incomplete"
            self.response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
        else:
            self.response.status = "completed"
        await self._keep(self.response)
        return [*events, self._snapshot(f"response.{self.response.status}")]

    async def collect(self, events: Iterable[CoreEvent]) -> ResponseObject:
        """A whole answer: the same translation as the stream's, said to no one."""
        self.start()
        for event in events:
            self.feed(event)
        await self.end()
        return self.response

    async def run(self, events: AsyncIterator[CoreEvent], raising: bool = False) -> ResponseObject:
        """The whole stream, said to no one: its object is what is read. A background
        response's failure fails the response; ``raising`` (a whole answer, which an
        HTTP status can still refuse) raises it instead."""
        self.start()
        try:
            async for event in events:
                if raising and isinstance(event, Failed):
                    raise event.error
                self.feed(event)
        except Exception as exc:
            if raising:
                raise
            if not isinstance(exc, CorralError):
                log.exception("background response failed")
                exc = CorralError("The server had an error while streaming.")
            self._fail(exc)
        await self.end()
        return self.response

    def _fail(self, exc: CorralError) -> list[Event]:
        code = exc.code or "server_error"
        self.response.status = "failed"
        self.response.error = {"code": code, "message": exc.message}
        return [
            self._event("error", code=code, message=exc.message, param=exc.param),
            self._snapshot("response.failed"),
        ]
