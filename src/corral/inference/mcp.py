"""Remote MCP tools, run by corral inside one request (Responses' `mcp` tool).

A request names MCP servers (``McpTool``); corral lists their tools while the request
is prepared (or reuses a listing its context holds), offers each allowed tool to the
model as a function named ``<server_label>__<tool>``, and when the model calls one, runs
the call on the server (``McpRun``) and runs the core again with the call and its output
in the history, until the model answers, asks the client for something (a function call
of its own, an approval), or the request's calls (``mcp.max_calls``) are spent. A call
that needs approval is not run: the response ends with an ``mcp_approval_request``,
which the client answers in its next request (``Approval``). Every pass is one metered
request: their usage is reported once, added up; the outputs the model read are input
tokens there.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.ids import new_id
from corral.inference.chat import ChatService, PreparedChat
from corral.inference.passes import RESULTS_SHARE, Message, call_messages, next_pass, total
from corral.inference.tool_schema import schema_error
from corral.mcp.client import JSON, CallOutcome, ListedTool, McpClient, McpServer
from corral.protocol.chat import ChatCompletion
from corral.protocol.common import Usage
from corral.protocol.events import (
    Event,
    Failed,
    Finish,
    ServerTool,
    ToolArgumentsDelta,
    ToolCallStart,
    UsageReport,
)
from corral.protocol.responses import McpApprovalRequestItem, McpCallItem, McpListToolsItem

Item = dict[str, Any]
SEPARATOR = "__"  # the model's name for a server's tool: "<server_label>__<tool>"
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass
class McpTool:
    """A request's MCP server: which of its tools the model may call, and which calls
    wait for the client's approval."""

    server: McpServer
    allowed: frozenset[str] | None = None  # tool names; None: every tool
    read_only_only: bool = False  # only tools annotated read-only
    approval: Any = "always"  # the request's `require_approval` (OpenAI's default)
    denied: frozenset[str] = frozenset()  # tool names turned off
    param: str = "tools"  # where the request names it, for errors
    tools: list[ListedTool] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.server.label

    def offered(self) -> list[ListedTool]:
        return [t for t in self.tools if self._allows(t)]

    def _allows(self, tool: ListedTool) -> bool:
        if self.allowed is not None and tool.name not in self.allowed:
            return False
        if tool.name in self.denied:
            return False
        return not self.read_only_only or _read_only(tool)

    def needs_approval(self, name: str) -> bool:
        policy = self.approval
        if policy in (None, "always"):
            return True
        if policy == "never":
            return False
        tool = next((t for t in self.tools if t.name == name), None)
        # Named under "always", or not named at all: approval, as by default.
        return not _matches(policy.get("never"), name, tool)

    def listing(self) -> McpListToolsItem:
        tools = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema,
                "annotations": t.annotations,
            }
            for t in self.tools
        ]
        return McpListToolsItem(id=new_id("mcpl", "_"), server_label=self.label, tools=tools)


def _read_only(tool: ListedTool | None) -> bool:
    return bool(tool and tool.annotations and tool.annotations.get("read_only_hint"))


def _matches(rule: Any, name: str, tool: ListedTool | None) -> bool:
    if not isinstance(rule, dict):
        return False
    if name in (rule.get("tool_names") or ()):
        return True
    return bool(rule.get("read_only")) and _read_only(tool)


def chat_name(label: str, name: str) -> str:
    return f"{label}{SEPARATOR}{name}"


def parse_tool(tool: Item, param: str, client: McpClient) -> McpTool:
    """A Responses `mcp` tool, checked before anything runs: its URL must be one the
    operator allows (400 otherwise, no connection made)."""
    label = tool.get("server_label")
    if not isinstance(label, str) or not LABEL.match(label):
        raise InvalidRequestError(
            "`server_label` must be 1-64 letters, digits, `_` or `-`.",
            param=f"{param}.server_label",
        )
    if tool.get("connector_id") is not None:
        raise UnsupportedParameterError(
            "OpenAI's connectors are not served here: name an MCP `server_url`.",
            param=f"{param}.connector_id",
        )
    url = tool.get("server_url")
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(
            "An `mcp` tool needs a `server_url`.", param=f"{param}.server_url"
        )
    client.check(url, f"{param}.server_url")
    allowed, read_only = _allowed_tools(tool.get("allowed_tools"), f"{param}.allowed_tools")
    approval = tool.get("require_approval", "always")
    if not (approval in (None, "always", "never") or isinstance(approval, dict)):
        raise InvalidRequestError(
            "`require_approval` must be always, never or {always, never}.",
            param=f"{param}.require_approval",
        )
    server = McpServer(label, url, _headers(tool, param))
    return McpTool(server, allowed, read_only, approval, param=param)


def _allowed_tools(value: Any, param: str) -> tuple[frozenset[str] | None, bool]:
    if value is None:
        return None, False
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return frozenset(value), False
    if isinstance(value, dict):
        names = value.get("tool_names")
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise InvalidRequestError("`tool_names` must be a list of names.", param=param)
        return (frozenset(names) if names is not None else None), bool(value.get("read_only"))
    raise InvalidRequestError(
        "`allowed_tools` must be a list of names or {tool_names, read_only}.", param=param
    )


def _headers(tool: Item, param: str) -> dict[str, str]:
    headers = tool.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InvalidRequestError("`headers` must map names to strings.", param=f"{param}.headers")
    token = tool.get("authorization")
    if token is not None:
        if not isinstance(token, str):
            raise InvalidRequestError(
                "`authorization` must be a string.", param=f"{param}.authorization"
            )
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return dict(headers)


def echoed(tool: Item) -> Item:
    """The tool as the response echoes and stores it: without its secrets."""
    return {k: v for k, v in tool.items() if k not in ("headers", "authorization")}


def function(tool: McpTool, listed: ListedTool) -> Item:
    """A server's tool as the core offers it to the model."""
    schema = listed.input_schema if listed.input_schema else {"type": "object"}
    if schema_error(schema) is not None:  # the server's own mistake: any arguments then
        schema = {"type": "object"}
    described = {"description": listed.description} if listed.description else {}
    named = {"name": chat_name(tool.label, listed.name), **described, "parameters": schema}
    return {"type": "function", "function": named}


def listed_tools(item: Item) -> list[ListedTool]:
    """The tools a kept ``mcp_list_tools`` item names (a later turn reuses them)."""
    return [
        ListedTool(
            str(t.get("name")),
            t.get("description"),
            t.get("input_schema") or {},
            t.get("annotations"),
        )
        for t in item.get("tools") or ()
        if isinstance(t, dict)
    ]


@dataclass(frozen=True)
class Approval:
    """A client's answer to an ``mcp_approval_request`` of an earlier response."""

    request: Item  # the approval request item, as kept in the context
    approve: bool


@dataclass
class _Call:
    start: ToolCallStart
    tool: McpTool
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class McpRun:
    chat: ChatService
    client: McpClient
    servers: dict[str, McpTool]  # by the model's function name
    prepared: PreparedChat
    max_calls: int
    approvals: list[Approval] = field(default_factory=list)
    listings: list[McpListToolsItem] = field(default_factory=list)  # listed for this request
    _added: list[Message] = field(default_factory=list)
    _usages: list[Usage] = field(default_factory=list)
    _calls: int = 0

    async def events(self, first: AsyncIterator[Event] | None) -> AsyncIterator[Event]:
        """The listings, the approved calls, then each pass and the calls it asked for,
        until the model answers. ``first``: the first pass, already running (none where
        approved calls come first: the pass after them reads their outputs)."""
        for listing in self.listings:
            yield ServerTool("listed", listing)
        stream = first
        for approval in self.approvals:
            async for event in self._approved(approval):
                yield event
        while True:
            if stream is None:
                stream = await self._pass()
                if stream is None:  # the output budget went on the calls
                    yield Finish("length")
                    break
            calls: list[_Call] = []
            ended = failed = False
            async for event in self._read(stream, calls):
                ended = ended or isinstance(event, Finish)
                failed = failed or isinstance(event, Failed)
                yield event
            if failed:
                return  # the error is the stream's last event
            if not calls:
                break
            asking = [c for c in calls if c.tool.needs_approval(c.name)]
            for call in (c for c in calls if c not in asking):
                async for event in self._run(call.tool, call.name, "".join(call.arguments)):
                    yield event
            for call in asking:
                yield ServerTool("approval", _approval_item(call))
            if asking or ended:  # the client answers next (an approval, its own call)
                if not ended:
                    yield Finish("stop")
                break
            stream = None
        yield UsageReport(total(self._usages))

    async def _read(self, stream: AsyncIterator[Event], calls: list[_Call]) -> AsyncIterator[Event]:
        """A pass's events, less its calls of MCP tools (gathered into ``calls``) and its
        usage; its finish only when it called none (the client's own calls end it)."""
        by_index: dict[int, _Call] = {}
        finish: Finish | None = None
        others = False
        async for event in stream:
            if isinstance(event, ToolCallStart) and event.name in self.servers:
                tool = self.servers[event.name]
                call = _Call(event, tool, event.name[len(tool.label) + len(SEPARATOR) :])
                by_index[event.call] = call
                calls.append(call)
            elif isinstance(event, ToolArgumentsDelta) and event.call in by_index:
                by_index[event.call].arguments.append(event.text)
            elif isinstance(event, UsageReport):
                self._usages.append(event.usage)
            elif isinstance(event, Finish):
                finish = event
            else:
                others = others or isinstance(event, ToolCallStart)
                yield event
        if finish is not None and (not calls or others):
            yield finish

    async def _run(
        self, tool: McpTool, name: str, arguments: str, approval_id: str | None = None
    ) -> AsyncIterator[Event]:
        item = McpCallItem(
            id=new_id("mcp", "_"),
            server_label=tool.label,
            name=name,
            arguments=arguments,
            approval_request_id=approval_id,
            status="in_progress",
        )
        yield ServerTool("calling", item)
        self._calls += 1
        outcome = await self._outcome(tool, name, arguments)
        item.output, item.error = outcome.output, outcome.error
        item.status = "failed" if outcome.error is not None else "completed"
        yield ServerTool("called", item)
        window = self.prepared.served.engine.info.context_window
        read = read_back(outcome.output, outcome.error)[: window // RESULTS_SHARE]
        self._added += call_messages(item.id, chat_name(tool.label, name), arguments, read)

    async def _outcome(self, tool: McpTool, name: str, arguments: str) -> CallOutcome:
        try:
            value = json.loads(arguments or "{}")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            error = {"type": "mcp_protocol_error", "code": -32602, "message": "Invalid arguments."}
            return CallOutcome(error=error)
        return await self.client.call(tool.server, name, value)

    async def _approved(self, approval: Approval) -> AsyncIterator[Event]:
        request = approval.request
        label, name = str(request.get("server_label")), str(request.get("name"))
        arguments = str(request.get("arguments") or "{}")
        tool = self.servers.get(chat_name(label, name))
        if approval.approve and tool is not None:
            async for event in self._run(tool, name, arguments, str(request.get("id"))):
                yield event
            return
        why = "The user declined this call: do not make it again." if tool else "Not available."
        self._added += call_messages(str(request.get("id")), chat_name(label, name), arguments, why)

    async def _pass(self) -> AsyncIterator[Event] | None:
        """The next pass: the request with every call so far and its output; past the
        limit on calls, without the MCP tools (the model answers with what it has)."""
        drop = set(self.servers) if self._calls >= self.max_calls else set()
        prepared = await next_pass(self.chat, self.prepared, self._added, self._usages, drop)
        if prepared is None:
            return None
        stream = await self.chat.run(prepared)
        assert not isinstance(stream, ChatCompletion)  # it streams, as the first pass did
        return stream


def _approval_item(call: _Call) -> McpApprovalRequestItem:
    return McpApprovalRequestItem(
        id=new_id("mcpr", "_"),
        server_label=call.tool.label,
        name=call.name,
        arguments="".join(call.arguments) or "{}",
    )


def error_text(error: JSON) -> str:
    """A call's error in words: its message, or the tool's own error content."""
    return str(error.get("message") or json.dumps(error.get("content")))


def read_back(output: str | None, error: JSON | None) -> str:
    """A call's result as the model reads it: in its own turn, and when a later turn
    replays the call (Responses' ``mcp_call`` item, Messages' ``mcp_tool_result``)."""
    if error is None:
        return output or "(no output)"
    return f"Error: {error_text(error)}"


@dataclass
class McpRequest:
    """A request's MCP servers, their listings, and the approvals its input answers."""

    servers: list[McpTool]
    listings: list[McpListToolsItem] = field(default_factory=list)  # listed for it
    approvals: list[Approval] = field(default_factory=list)

    def functions(self) -> dict[str, McpTool]:
        """The model's function names for the servers' allowed tools."""
        return {chat_name(s.label, t.name): s for s in self.servers for t in s.offered()}

    def offered(self) -> list[Item]:
        return [function(s, t) for s in self.servers for t in s.offered()]

    async def list_tools(self, client: McpClient, history: list[Item]) -> None:
        """Each server's tools: the listing the context holds for its label (an earlier
        turn's), or the server's own answer now (a failure fails the request: 424)."""
        for server in self.servers:
            kept = _kept_listing(history, server.label)
            if kept is not None:
                server.tools = listed_tools(kept)
                continue
            server.tools = await client.list_tools(server.server, server.param)
            self.listings.append(server.listing())

    def answer(self, items: list[Item], history: list[Item]) -> None:
        """The approval responses among the request's own items, each matched to the
        request it answers (400 where none is in the context)."""
        asked = {i.get("id"): i for i in history if i.get("type") == "mcp_approval_request"}
        for index, item in enumerate(items):
            if item.get("type") != "mcp_approval_response":
                continue
            param = f"input[{index}]"
            request = asked.get(item.get("approval_request_id"))
            if request is None:
                raise InvalidRequestError(
                    "No `mcp_approval_request` with this id is in the context: continue "
                    "from the response that asked (`previous_response_id`).",
                    param=f"{param}.approval_request_id",
                )
            if not isinstance(item.get("approve"), bool):
                raise InvalidRequestError(
                    "`approve` must be true or false.", param=f"{param}.approve"
                )
            self.approvals.append(Approval(request, item["approve"]))


def _kept_listing(history: list[Item], label: str) -> Item | None:
    for item in reversed(history):
        kept = item.get("type") == "mcp_list_tools" and item.get("server_label") == label
        if kept and not item.get("error"):
            return item
    return None
