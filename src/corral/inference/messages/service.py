"""The Messages API on the generation core: a request is translated onto a Chat
Completions request (``messages.translate``), prepared and run by ``ChatService`` (so
every guarantee of chat holds: constrained tool calls, limits, metering), always as a
stream, and the stream translated into Anthropic's events or collected into a message
(``messages.events``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from corral.catalog.registry import ModelRegistry
from corral.core.config import McpSettings, MessagesSettings
from corral.core.ids import new_id
from corral.inference.chat import ChatService, PreparedChat
from corral.inference.mcp import McpRequest, McpRun
from corral.inference.messages.events import MessageStream
from corral.inference.messages.mcp import mcp_request
from corral.inference.messages.translate import (
    Thinking,
    Tools,
    chat_body,
    check_fields,
    to_messages,
    to_thinking,
    to_tools,
)
from corral.inference.passes import widened
from corral.inference.prepared import Prepared
from corral.inference.reasoning import is_reasoning
from corral.inference.sealed import Sealer
from corral.mcp.client import McpClient
from corral.protocol.chat import CORE_NAMES, ChatCompletion, ChatCompletionRequest
from corral.protocol.events import Event
from corral.protocol.messages import Message, MessagesRequest, MessageUsage


@dataclass(frozen=True, kw_only=True)
class PreparedMessage(Prepared):
    chat: PreparedChat
    tools: Tools
    thinking: Thinking
    mcp: McpRequest | None = None  # the request's MCP servers (the connector)


class MessageService:
    def __init__(
        self,
        chat: ChatService,
        registry: ModelRegistry,
        sealer: Sealer,
        settings: MessagesSettings,
        mcp: McpSettings | None = None,
    ) -> None:
        """``mcp``: remote MCP servers may be reached (``mcp_servers``), where the
        operator allows (``mcp.allowed_urls``)."""
        self._chat = chat
        self._registry = registry
        self._sealer = sealer
        self._settings = settings
        self._mcp_settings = mcp or McpSettings()
        self._mcp = McpClient(self._mcp_settings)

    async def prepare(self, req: MessagesRequest) -> PreparedMessage:
        """Everything that can be refused is refused here, before metering. A
        ``max_tokens`` over what the window leaves is clamped to it (agents send a fixed
        32,000 to every model)."""
        body, tools, thinking, mcp = await self._translate(req)
        chat = await self._chat.prepare(body, fit=True, find_stops=True)
        # The core's request names its dialect: its log line and metrics say `messages`.
        chat = replace(chat, charge=replace(chat.charge, endpoint="messages"))
        if mcp is not None:
            window = chat.served.engine.info.context_window
            passes = self._mcp_settings.max_calls + 1
            chat = replace(chat, charge=widened(chat.charge, window, passes))
        return PreparedMessage(
            served=chat.served,
            charge=chat.charge,
            stream=req.stream,
            want_usage=True,  # message_delta carries it
            chat=chat,
            tools=tools,
            thinking=thinking,
            mcp=mcp,
        )

    async def _translate(
        self, req: MessagesRequest
    ) -> tuple[ChatCompletionRequest, Tools, Thinking, McpRequest | None]:
        check_fields(req)
        thinking = to_thinking(req, is_reasoning(self._registry.get(req.model).spec))
        tools = to_tools(req.tools, self._settings.refuse_server_tools)
        mcp = mcp_request(req, self._mcp)
        messages = to_messages(req, self._verify)
        if mcp is not None:
            await mcp.list_tools(self._mcp, [])
            tools.chat += mcp.offered()
        body = chat_body(req, messages, tools, thinking)
        return ChatCompletionRequest.model_validate(body, context=CORE_NAMES), tools, thinking, mcp

    def _verify(self, signature: str, param: str) -> None:
        """A replayed thinking block's signature must be ours, unaltered."""
        self._sealer.open(signature, param)

    async def count_tokens(self, req: MessagesRequest) -> int:
        """The request's input tokens after the template and tools prompt (not metered:
        nothing is generated)."""
        return await self._chat.count_prompt((await self._translate(req))[0])

    async def run(self, p: PreparedMessage) -> Any:
        result = await self._chat.run(p.chat)
        if p.mcp is None:
            return result
        assert not isinstance(result, ChatCompletion)  # Messages always streams the core
        limit = self._mcp_settings.max_calls
        run = McpRun(self._chat, self._mcp, p.mcp.functions(), p.chat, limit)
        return run.events(result)

    def presenter(self, p: PreparedMessage) -> MessageStream:
        """The Messages events of this answer, streamed or collected."""
        message = Message(
            id=new_id("msg", "_"),
            model=p.served.spec.id,
            usage=MessageUsage(input_tokens=0, output_tokens=0),
        )
        return MessageStream(message, self._sealer.seal, p.thinking.shown)

    async def collect(self, p: PreparedMessage, events: AsyncIterator[Event]) -> Message:
        return await self.presenter(p).collect(events)
