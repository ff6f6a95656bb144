"""The Responses API on the generation core: a request is translated onto a Chat
Completions request (``responses.input``), prepared and run by ``ChatService`` (so every
guarantee of chat holds: constrained tool calls, JSON schema output, limits), and its
answer translated back into a response object or typed events (``responses.events``).
Responses with ``store`` are kept for ``previous_response_id`` and retrieval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Literal

import anyio

from corral.accounts.keys import Principal
from corral.core.config import McpSettings, ResponsesSettings
from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.ids import new_id
from corral.inference.chat import ChatService, PreparedChat
from corral.inference.mcp import McpRun
from corral.inference.passes import widened
from corral.inference.prepared import Prepared
from corral.inference.responses.conversations import ConversationStore, stored_item
from corral.inference.responses.events import EventStream
from corral.inference.responses.file_search import FileSearchRun
from corral.inference.responses.input import Item, as_items, chat_body, with_parts
from corral.inference.responses.store import ResponseStore, Stored
from corral.inference.responses.tools import FileSearch, ToolSet, toolset
from corral.inference.sealed import Sealer
from corral.mcp.client import McpClient
from corral.protocol.chat import CORE_NAMES, ChatCompletion, ChatCompletionRequest
from corral.protocol.events import Event, aclose, completion_events
from corral.protocol.responses import (
    ResponseObject,
    ResponseRequest,
    TextConfig,
)
from corral.vector_stores.service import VectorStoreService

log = logging.getLogger(__name__)


async def _nothing(_: ResponseObject) -> None:
    """A background response is stored as it goes, not by the event stream."""


ABANDONED = {
    "code": "server_error",
    "message": "The server running this background response stopped before it finished.",
}


Status = Literal["completed", "in_progress", "queued"]


@dataclass(frozen=True, kw_only=True)
class PreparedResponse(Prepared):
    chat: PreparedChat
    req: ResponseRequest
    scope: str  # the project it is stored under
    input_items: list[Item]
    history: list[Item]  # every item the model sees, these inputs last
    tools: ToolSet
    conversation_id: str | None  # the turn is appended to it
    seal: Callable[[str], str] | None  # encrypts reasoning for the client, when included
    who: Principal | None = None  # the caller: whose vector stores a file_search reads


def _check_sealed(items: list[Item], sealer: Sealer) -> None:
    """A replayed reasoning item's encrypted content must be ours, unaltered."""
    for index, item in enumerate(items):
        token = item.get("encrypted_content") if item.get("type") == "reasoning" else None
        if token is not None:
            sealer.open(str(token), f"input[{index}].encrypted_content")


def _refuse_unserved(req: ResponseRequest) -> None:
    if req.background and not req.store:
        raise InvalidRequestError(
            "A `background` response must be stored: `store` cannot be false.", param="store"
        )
    if req.background and req.stream:
        raise UnsupportedParameterError(
            "`background` with `stream` is not supported: poll GET /v1/responses/{id}.",
            param="stream",
        )
    if req.conversation is not None and req.previous_response_id is not None:
        raise InvalidRequestError(
            "`conversation` and `previous_response_id` cannot be used together.",
            param="conversation",
        )


def _conversation_id(req: ResponseRequest) -> str | None:
    value = req.conversation
    if isinstance(value, dict):
        value = value.get("id")
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError("`conversation` must be an id or {id}.", param="conversation")
    return value


class ResponseService:
    def __init__(
        self,
        chat: ChatService,
        store: ResponseStore,
        conversations: ConversationStore,
        sealer: Sealer,
        settings: ResponsesSettings,
        vector_stores: VectorStoreService | None = None,
        mcp: McpSettings | None = None,
    ) -> None:
        """``vector_stores``: where the `file_search` tool searches (without it, the tool
        is left out like the other hosted tools); ``mcp``: remote MCP servers may be
        reached (where the operator allows: ``mcp.allowed_urls``)."""
        self._chat = chat
        self._mcp_settings = mcp
        self._mcp = McpClient(mcp) if mcp is not None else None
        self._vector_stores = vector_stores
        self._store = store
        self._conversations = conversations
        self._sealer = sealer
        self._settings = settings
        self._tasks: dict[str, asyncio.Task[None]] = {}  # background responses running here
        self.me = new_id("replica", "_")  # the worker of the background responses run here
        self._stopping = False  # shutting down: a cancelled background run failed

    async def prepare(
        self, req: ResponseRequest, scope: str, who: Principal | None = None
    ) -> PreparedResponse:
        """Everything that can be refused is refused here, before metering. ``who``: the
        caller, whose vector stores a `file_search` tool may name (none: batches)."""
        items, history, tools, body = await self._translate(req, scope, who is not None)
        chat = await self._chat.prepare(body)
        # The core's request names its dialect: its log line and metrics say `responses`.
        chat = replace(chat, charge=replace(chat.charge, endpoint="responses"))
        window = chat.served.engine.info.context_window
        if tools.file_search is not None:
            await self._check_stores(tools.file_search, who)
            chat = replace(chat, charge=widened(chat.charge, window))
        if tools.mcp is not None and self._mcp_settings is not None:
            passes = self._mcp_settings.max_calls + 1
            chat = replace(chat, charge=widened(chat.charge, window, passes))
        include = set(req.include or ())
        return PreparedResponse(
            served=chat.served,
            charge=chat.charge,
            stream=req.stream,
            want_usage=True,  # the final event carries it
            chat=chat,
            req=req,
            scope=scope,
            input_items=items,
            history=history,
            tools=tools,
            conversation_id=_conversation_id(req),
            seal=self._sealer.seal if "reasoning.encrypted_content" in include else None,
            who=who,
        )

    async def _check_stores(self, tool: FileSearch, who: Principal | None) -> None:
        """The stores a file_search names are the caller's (404 otherwise), before it
        costs anything."""
        if who is None or self._vector_stores is None:
            raise UnsupportedParameterError(
                "The `file_search` tool is served on /v1/responses only.", param="tools"
            )
        for store_id in tool.vector_store_ids:
            await self._vector_stores.row(who, store_id)

    async def _translate(
        self, req: ResponseRequest, scope: str, direct: bool = True
    ) -> tuple[list[Item], list[Item], ToolSet, ChatCompletionRequest]:
        """The request's own items, the history the model sees, the tools served, and the
        core's request. ``direct``: a client's own request (a batch's line may not make
        corral connect to an MCP server: nobody could approve its calls)."""
        if req.unknown_fields():
            name = req.unknown_fields()[0]
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)
        _refuse_unserved(req)
        items = as_items(req.input)
        before: list[Item] = []
        if req.previous_response_id is not None:
            param = "previous_response_id"
            before = (await self._store.get(scope, req.previous_response_id, param)).context()
        conversation = _conversation_id(req)
        if conversation is not None:
            before = await self._conversations.items(scope, conversation, "conversation")
        _check_sealed(items, self._sealer)
        history = [*before, *items]
        tools = toolset(
            req.tools,
            self._settings.refuse_hosted_tools,
            self._vector_stores is not None,
            self._mcp,
        )
        if tools.mcp is not None and self._mcp is not None:
            if not direct:
                raise UnsupportedParameterError(
                    "The `mcp` tool is served on /v1/responses only.", param="tools"
                )
            await tools.mcp.list_tools(self._mcp, history)
            tools.mcp.answer(items, history)
            tools.chat += tools.mcp.offered()
        # A background response runs on the core's stream: cancelling it closes the
        # stream, which stops the generation (a whole-answer call would run on). So does
        # one that may run a tool of its own: its first pass is read as it comes.
        server_tools = tools.file_search is not None or tools.mcp is not None
        stream = req.stream or req.background or server_tools
        body = ChatCompletionRequest.model_validate(
            {**chat_body(req, history, tools), "stream": stream}, context=CORE_NAMES
        )
        return items, history, tools, body

    async def input_tokens(self, req: ResponseRequest, scope: str) -> int:
        """What the request's input would count as prompt tokens (not metered: nothing
        is generated)."""
        return await self._chat.count_prompt((await self._translate(req, scope))[3])

    async def run(self, p: PreparedResponse) -> ChatCompletion | AsyncIterator[Event]:
        if p.tools.mcp is not None:
            return await self._run_mcp(p)
        result = await self._chat.run(p.chat)
        tool = p.tools.file_search
        if tool is None or isinstance(result, ChatCompletion):
            return result
        assert self._vector_stores is not None and p.who is not None  # checked in prepare
        include = "file_search_call.results" in (p.req.include or ())
        run = FileSearchRun(self._chat, self._vector_stores, p.who, tool, p.chat, include)
        return run.events(result)

    async def _run_mcp(self, p: PreparedResponse) -> AsyncIterator[Event]:
        """The passes of a request with MCP servers: approved calls run first, and the
        first pass then reads their outputs (it is not started before them)."""
        mcp = p.tools.mcp
        assert mcp is not None and self._mcp is not None and self._mcp_settings is not None
        first: AsyncIterator[Event] | None = None
        if not mcp.approvals:
            started = await self._chat.run(p.chat)
            assert not isinstance(started, ChatCompletion)  # it streams (see _translate)
            first = started
        limit = self._mcp_settings.max_calls
        run = McpRun(
            self._chat, self._mcp, mcp.functions(), p.chat, limit, mcp.approvals, mcp.listings
        )
        return run.events(first)

    def skeleton(self, p: PreparedResponse, status: Status) -> ResponseObject:
        """The response object before its output: what the request asked for, echoed."""
        req = p.req
        return ResponseObject(
            id=new_id("resp", "_"),
            created_at=int(time.time()),
            status=status,
            model=p.served.spec.id,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            metadata=req.metadata or {},
            parallel_tool_calls=req.parallel_tool_calls,
            previous_response_id=req.previous_response_id,
            reasoning=req.reasoning,
            store=req.store,
            temperature=req.temperature,
            top_p=req.top_p,
            text=req.text or TextConfig(),
            tool_choice=req.tool_choice or "auto",
            tools=p.tools.honoured,
            conversation={"id": p.conversation_id} if p.conversation_id else None,
            truncation=req.truncation or "disabled",
            user=req.user,
            background=req.background,
        )

    async def finish(
        self, p: PreparedResponse, answer: ChatCompletion | AsyncIterator[Event]
    ) -> ResponseObject:
        """A whole answer, through the stream's own translation (kept once built): the
        core's whole answer, or a stream read to its end (a response that searched)."""
        if isinstance(answer, ChatCompletion):
            return await self.presenter(p).collect(completion_events(answer))
        return await self.presenter(p).run(answer, raising=True)

    def presenter(self, p: PreparedResponse) -> EventStream:
        """The typed events of a streamed response (kept once it ends)."""
        keep = partial(self.keep, p)
        return EventStream(self.skeleton(p, "in_progress"), keep, p.tools, p.seal)

    async def keep(self, p: PreparedResponse, response: ResponseObject) -> None:
        """Store the response (``store``) and add the turn to its conversation."""
        try:
            if p.req.store:
                await self._store.save(p.scope, Stored(response, p.input_items, p.history))
            if p.conversation_id is not None:
                turn = [*p.input_items, *(o.model_dump() for o in response.output)]
                items = [stored_item(i) for i in turn]
                await self._conversations.add(p.scope, p.conversation_id, items, "conversation")
        except Exception:  # the answer went out; a lost copy must not turn it into an error
            log.exception("storing response %s failed", response.id)

    async def start_background(
        self, p: PreparedResponse, events: AsyncIterator[Event]
    ) -> ResponseObject:
        """Store the response ``queued`` and run it in a task of its own: it outlives the
        request (the client polls ``get``, or ``cancel``s it)."""
        response = self.skeleton(p, "queued")
        await self._store.save(p.scope, Stored(response, p.input_items, p.history, self.me))
        queued = response.model_copy(deep=True)
        task = asyncio.create_task(self._background(p, response, events))
        self._tasks[response.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(response.id, None))
        return queued

    async def _background(
        self, p: PreparedResponse, response: ResponseObject, events: AsyncIterator[Event]
    ) -> None:
        response.status = "in_progress"
        stream = EventStream(response, _nothing, p.tools, p.seal)
        beating = asyncio.create_task(self._beat(response.id))
        try:
            await self._store.update(p.scope, response)
            await stream.run(events)
        except asyncio.CancelledError:
            response.status = "failed" if self._stopping else "cancelled"
            response.error = ABANDONED if self._stopping else None
            raise
        finally:
            beating.cancel()
            with anyio.CancelScope(shield=True):
                await aclose(events)  # a cancelled run stops its generation, and is billed
                await self._settle_background(p, response)

    async def _settle_background(self, p: PreparedResponse, response: ResponseObject) -> None:
        try:
            await self._store.update(p.scope, response)
            if p.conversation_id is not None and response.status in ("completed", "incomplete"):
                turn = [*p.input_items, *(o.model_dump() for o in response.output)]
                items = [stored_item(i) for i in turn]
                await self._conversations.add(p.scope, p.conversation_id, items, "conversation")
        except Exception:
            log.exception("storing background response %s failed", response.id)

    async def stop(self) -> None:
        """Shutting down: the background responses running here stop, and end ``failed``
        at once rather than when their heartbeat goes stale (what they generated is
        billed, as a cancel's is)."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _beat(self, response_id: str) -> None:
        """Mark a background response alive while it runs here (readers elsewhere tell a
        stopped process by a stale mark)."""
        while True:
            await asyncio.sleep(self._settings.background_heartbeat_s)
            with contextlib.suppress(Exception):  # a missed beat is retried; never fatal
                await self._store.beat(response_id, self.me)

    async def _read(self, scope: str, response_id: str, param: str = "response_id") -> Stored:
        """A stored response; a background one left running by a process that stopped
        (crashed, killed, shut down mid-run) is failed first: nothing runs it any more,
        so it would read ``in_progress`` forever. ``failed`` with a ``server_error`` is
        what OpenAI answers when its side could not finish a response; ``cancelled``
        would say the client stopped it, ``incomplete`` that a limit was reached."""
        stored = await self._store.get(scope, response_id, param)
        if not stored.response.background or response_id in self._tasks:
            return stored
        stale = timedelta(seconds=3 * self._settings.background_heartbeat_s)
        return await self._store.fail_if_abandoned(scope, stored, stale, ABANDONED)

    async def cancel(self, scope: str, response_id: str) -> ResponseObject:
        """Cancel a background response: its task is cancelled and awaited, so the answer
        shows it ``cancelled`` (a finished one is returned as it is)."""
        stored = await self._read(scope, response_id)
        if not stored.response.background:
            raise InvalidRequestError(
                "Only responses created with `background: true` can be cancelled.",
                param="response_id",
            )
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif stored.response.status in ("queued", "in_progress"):
            # Running on another replica (a live heartbeat): the cancel is recorded; that
            # replica's run goes on and its last update wins (a known limit).
            stored.response.status = "cancelled"
            await self._store.update(scope, stored.response)
        return (await self._store.get(scope, response_id)).response

    async def get(self, scope: str, response_id: str) -> ResponseObject:
        return (await self._read(scope, response_id)).response

    async def input_items(self, scope: str, response_id: str) -> list[Item]:
        """The request's own items as OpenAI lists them (also those stored before
        ``as_items`` gave a message's content as parts)."""
        return [with_parts(i) for i in (await self._store.get(scope, response_id)).input_items]

    async def delete(self, scope: str, response_id: str) -> None:
        await self._store.delete(scope, response_id)
