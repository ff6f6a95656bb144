"""Connections to remote MCP servers, on the official ``mcp`` SDK (streamable HTTP).

A request may name any URL; corral connects only where the operator allowed
(``mcp.allowed_urls``): the URL a request names is checked before anything is prepared,
and every HTTP request the SDK makes is checked again as it goes out, so a redirect
(which the SDK follows within the server's origin) cannot leave the allowed prefix.
Every operation is bounded: a deadline (``mcp.timeout_s``), the bytes of each answer
(``mcp.max_response_bytes``, cut off as they arrive, never read whole first) and the
tools one server may list. A request's headers and tokens go to the server and nowhere
else: they are not logged (``core.logs`` keeps the SDK and its HTTP client quiet) and
the caller keeps them out of what it stores.

Each operation opens its own connection: listing happens while a request is prepared
and calls while it runs, possibly minutes apart, and a stateless connection per
operation needs no cleanup when a client goes away between them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from corral.core.config import McpSettings
from corral.core.errors import ExternalConnectorError, InvalidRequestError

JSON = dict[str, Any]


class TooLarge(Exception):
    """An MCP server's answer passed ``mcp.max_response_bytes``."""


@dataclass(frozen=True)
class McpServer:
    """An MCP server as one request names it. ``headers`` (an ``authorization`` among
    them) are the request's secrets: sent to this server only."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str | None
    input_schema: JSON
    annotations: JSON | None


@dataclass(frozen=True)
class CallOutcome:
    """A call's output, or its error in the Responses API's words (``mcp_call.error``)."""

    output: str | None = None
    error: JSON | None = None


def allowed(url: str, prefixes: list[str]) -> bool:
    """Whether ``url`` lies under one of the operator's prefixes: same scheme, host and
    port, and a path that starts with the prefix's. No credentials in the URL and no
    dot segments, even encoded (a server may decode them after the check)."""
    try:
        target = httpx2.URL(url)
    except Exception:
        return False
    raw = target.raw_path.decode("ascii", "replace").lower()
    if target.scheme not in ("http", "https") or target.userinfo or ".." in raw or "%2e" in raw:
        return False
    for prefix in prefixes:
        base = httpx2.URL(prefix)
        same = (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
        if same and target.path.startswith(base.path or "/"):
            return True
    return False


class _Capped(httpx2.AsyncByteStream):
    """An answer's body, counted as it arrives and cut off past the limit."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise TooLarge(f"The MCP server's answer passed {self._limit} bytes.")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedTransport(httpx2.AsyncBaseTransport):
    def __init__(self, limit: int) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        response.stream = _Capped(response.stream, self._limit)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class McpClient:
    def __init__(self, settings: McpSettings) -> None:
        self._settings = settings

    def require_enabled(self, param: str) -> None:
        """Refuse any MCP server where the operator allowed none (400, naming the
        setting)."""
        if not self._settings.prefixes:
            raise InvalidRequestError(
                "Remote MCP servers are not enabled on this server: the operator allows "
                "them with CORRAL_MCP__ALLOWED_URLS (comma-separated URL prefixes).",
                param=param,
                code="mcp_not_allowed",
            )

    def check(self, url: str, param: str) -> None:
        """Refuse a URL the operator has not allowed (400, before any connection)."""
        self.require_enabled(param)
        if not allowed(url, self._settings.prefixes):
            raise InvalidRequestError(
                f"The MCP server URL `{url}` is not allowed here: CORRAL_MCP__ALLOWED_URLS "
                "names the URL prefixes this server may connect to.",
                param=param,
                code="mcp_not_allowed",
            )

    @asynccontextmanager
    async def _connect(self, server: McpServer) -> AsyncIterator[Client]:
        prefixes = self._settings.prefixes

        async def recheck(request: httpx2.Request) -> None:
            if not allowed(str(request.url), prefixes):
                raise httpx2.RequestError("redirected outside the allowed MCP URLs")

        http = httpx2.AsyncClient(
            headers=server.headers,
            timeout=httpx2.Timeout(self._settings.timeout_s),
            transport=_CappedTransport(self._settings.max_response_bytes),
            event_hooks={"request": [recheck]},
        )
        async with http:
            transport = streamable_http_client(server.url, http_client=http)
            async with Client(transport, read_timeout_seconds=self._settings.timeout_s) as client:
                yield client

    async def list_tools(self, server: McpServer, param: str) -> list[ListedTool]:
        """The server's tools; a server that cannot list them fails the request (424)."""
        try:
            with anyio.fail_after(self._settings.timeout_s):
                async with self._connect(server) as client:
                    return await self._pages(client)
        except ExternalConnectorError:
            raise
        except Exception as exc:
            raise ExternalConnectorError(
                f"Error retrieving tool list from MCP server: '{server.label}'. "
                f"{_why(exc, self._settings.timeout_s)}",
                param=param,
                code="http_error" if not isinstance(exc, MCPError) else "mcp_protocol_error",
            ) from None

    async def _pages(self, client: Client) -> list[ListedTool]:
        tools: list[ListedTool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                annotations = tool.annotations.model_dump() if tool.annotations else None
                listed = ListedTool(tool.name, tool.description, tool.input_schema, annotations)
                tools.append(listed)
            if len(tools) > self._settings.max_tools:
                raise ExternalConnectorError(
                    f"The MCP server lists more than {self._settings.max_tools} tools "
                    "(mcp.max_tools): name the ones to use in `allowed_tools`."
                )
            cursor = page.next_cursor
            if cursor is None:
                return tools

    async def call(self, server: McpServer, name: str, arguments: JSON) -> CallOutcome:
        """One call, its failures told as the call's error (the model reads them)."""
        try:
            with anyio.fail_after(self._settings.timeout_s):
                async with self._connect(server) as client:
                    result = await client.call_tool(name, arguments)
        except MCPError as exc:
            message = str(exc.error.message)
            return CallOutcome(
                error={"type": "mcp_protocol_error", "code": exc.code, "message": message}
            )
        except Exception as exc:
            status = 504 if isinstance(exc, TimeoutError) else 502
            message = _why(exc, self._settings.timeout_s)
            return CallOutcome(error={"type": "http_error", "code": status, "message": message})
        text = _text(result.content, result.structured_content)
        if result.is_error:
            content = [block.model_dump(mode="json") for block in result.content]
            return CallOutcome(error={"type": "mcp_tool_execution_error", "content": content})
        return CallOutcome(output=text)


def _text(content: list[Any], structured: Any) -> str:
    """A result as text: its text blocks, other blocks as JSON; structured content where
    the result has no block."""
    parts = [
        block.text
        if getattr(block, "type", None) == "text"
        else json.dumps(block.model_dump(mode="json"))
        for block in content
    ]
    if not parts and structured is not None:
        return json.dumps(structured)
    return "\n".join(parts)


def _why(exc: BaseException, timeout_s: float) -> str:
    """What went wrong, without the request's headers (none of these messages holds
    them)."""
    for inner in _leaves(exc):
        if isinstance(inner, TooLarge):
            return str(inner)
        if isinstance(inner, TimeoutError):
            return f"The MCP server did not answer within {timeout_s:g} s."
        if isinstance(inner, httpx2.HTTPStatusError):
            return f"Http status code: {inner.response.status_code}."
        if isinstance(inner, MCPError):
            return f"MCP error {inner.code}: {inner.error.message}"
    return f"{type(exc).__name__}: {exc}"[:300]


def _leaves(exc: BaseException) -> list[BaseException]:
    """An exception and, through exception groups and causes, those inside it."""
    found: list[BaseException] = [exc]
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found += _leaves(inner)
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            found += _leaves(linked)
    return found
