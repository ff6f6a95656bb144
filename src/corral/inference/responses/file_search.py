"""The `file_search` tool, run by corral inside one Responses request.

The model is offered a `file_search` function (``tools.FILE_SEARCH_FUNCTION``). When its
answer calls it, the call is not said to the client: corral searches the request's
vector stores with the call's queries (``VectorStoreService.search_stores``: the
caller's stores only, the query embeddings metered to the caller), says a
``file_search_call`` item, and runs a second pass on the core with the results in the
history, whose answer cites the files found (``file_citation``). Both passes are one
metered request: their usage is reported once, added up.

The results the model reads are bounded (``RESULTS_SHARE`` of the window, in
characters), and the request's reservation is widened for the second pass before it is
admitted (``widened``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from corral.accounts.keys import Principal
from corral.core.ids import new_id
from corral.inference.chat import ChatService, PreparedChat
from corral.inference.passes import RESULTS_SHARE, call_messages, next_pass, total
from corral.inference.responses.tools import FILE_SEARCH, FileSearch
from corral.protocol.chat import ChatCompletion
from corral.protocol.common import Usage
from corral.protocol.events import (
    Event,
    Finish,
    ServerTool,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from corral.protocol.responses import FileSearchCallItem
from corral.protocol.vector_stores import SearchRequest, SearchResult, SearchResultsPage
from corral.vector_stores.service import VectorStoreService


@dataclass
class Citations:
    """The files a search found, in rank order, once each: what the answer cites."""

    files: list[tuple[str, str]] = field(default_factory=list)

    def add(self, page: SearchResultsPage) -> None:
        for result in page.data:
            if (result.file_id, result.filename) not in self.files:
                self.files.append((result.file_id, result.filename))


@dataclass
class FileSearchRun:
    chat: ChatService
    stores: VectorStoreService
    who: Principal
    tool: FileSearch
    prepared: PreparedChat
    include_results: bool

    async def events(self, first: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """The first pass's events, a search where it called for one, then the answer."""
        usages: list[Usage] = []
        call: ToolCallStart | None = None
        arguments: list[str] = []
        async for event in first:
            if isinstance(event, ToolCallStart) and event.name == FILE_SEARCH and call is None:
                call = event
            elif isinstance(event, ToolArgumentsDelta) and call and event.call == call.call:
                arguments.append(event.text)
            elif isinstance(event, UsageReport):
                usages.append(event.usage)
            elif not (isinstance(event, Finish) and call is not None):
                yield event
        if call is not None:
            async for event in self._search(call, "".join(arguments), usages):
                yield event
        yield UsageReport(total(usages))

    async def _search(
        self, call: ToolCallStart, arguments: str, usages: list[Usage]
    ) -> AsyncIterator[Event]:
        queries = self._queries(arguments)
        item = FileSearchCallItem(id=new_id("fs", "_"), queries=queries, status="searching")
        yield ServerTool("searching", item)
        ids = self.tool.vector_store_ids
        page = await self.stores.search_stores(self.who, ids, self._ask(queries))
        item.status = "completed"
        item.results = [_result(r) for r in page.data] if self.include_results else None
        citations = Citations()
        citations.add(page)
        yield ServerTool("completed", item, citations.files)
        second = await self._second_pass(call, arguments, page, usages[0])
        if second is None:  # the output budget went on the call
            yield Finish("length")
            return
        stream = await self.chat.run(second)
        assert not isinstance(stream, ChatCompletion)  # it streams, as the first pass did
        async for event in stream:
            if isinstance(event, UsageReport):
                usages.append(event.usage)
            else:
                yield event

    def _queries(self, arguments: str) -> list[str]:
        """The call's queries, once each, and the user's question itself: a small model's
        queries can miss what the question names (seen: the 135M model searched for
        made-up URLs), and the hybrid search ranks by every query. A call cut short or
        malformed searches the question alone."""
        try:
            value = json.loads(arguments)
            asked = [q.strip() for q in value.get("queries", []) if isinstance(q, str)]
        except (ValueError, AttributeError):
            asked = []
        return list(dict.fromkeys([*(q for q in asked if q), self._question()]))

    def _question(self) -> str:
        users = [m for m in self.prepared.req.messages if m.role == "user"]
        content = users[-1].content if users else ""
        return (content if isinstance(content, str) else json.dumps(content))[:500] or "?"

    def _ask(self, queries: list[str]) -> SearchRequest:
        ask: dict[str, Any] = {"query": queries}
        if self.tool.max_num_results is not None:
            ask["max_num_results"] = self.tool.max_num_results
        if self.tool.filters is not None:
            ask["filters"] = self.tool.filters
        if self.tool.ranking_options is not None:
            ask["ranking_options"] = self.tool.ranking_options
        return SearchRequest.model_validate(ask)

    async def _second_pass(
        self, call: ToolCallStart, arguments: str, page: SearchResultsPage, spent: Usage
    ) -> PreparedChat | None:
        """The request again with the search and its results in the history, the
        file_search tool taken away (one search a response)."""
        window = self.prepared.served.engine.info.context_window
        added = call_messages(call.call_id, FILE_SEARCH, arguments, _read(page, window))
        return await next_pass(self.chat, self.prepared, added, [spent], drop={FILE_SEARCH})


def _read(page: SearchResultsPage, window: int) -> str:
    """The results as the model reads them, numbered, within their share of the window."""
    parts = [f"[{i}] {r.filename}: {_text(r)}" for i, r in enumerate(page.data, 1)]
    return "\n\n".join(parts)[: window // RESULTS_SHARE] or "No file matched."


def _text(result: SearchResult) -> str:
    return " ".join(c.text for c in result.content)


def _result(result: SearchResult) -> dict[str, Any]:
    """A search result as a ``file_search_call`` item carries it."""
    return {
        "file_id": result.file_id,
        "filename": result.filename,
        "score": result.score,
        "attributes": result.attributes,
        "text": _text(result),
    }
