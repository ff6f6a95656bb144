"""Anthropic's MCP connector on the Messages API: ``mcp_servers`` (each ``{type: url,
name, url, authorization_token, tool_configuration: {enabled, allowed_tools}}``) and the
newer ``mcp_toolset`` tools that turn a server's tools on and off (``default_config``,
``configs``). The servers run on the machinery Responses' `mcp` tool uses
(``inference.mcp``): listed while the request is prepared, called without approval (the
connector has none), each call and its result said as ``mcp_tool_use`` and
``mcp_tool_result`` blocks of the assistant's message.
"""

from __future__ import annotations

from typing import Any

from corral.core.errors import InvalidRequestError
from corral.inference.mcp import LABEL, McpRequest, McpTool, chat_name
from corral.mcp.client import McpClient, McpServer
from corral.protocol.messages import MessagesRequest

Block = dict[str, Any]


def mcp_request(req: MessagesRequest, client: McpClient) -> McpRequest | None:
    """The request's MCP servers, checked before anything runs (a URL the operator has
    not allowed is a 400, no connection made)."""
    toolsets = _toolsets(req.tools)
    if req.mcp_servers is None:
        if toolsets:
            name = next(iter(toolsets))
            raise InvalidRequestError(
                f"`mcp_toolset` names the MCP server `{name}`, which `mcp_servers` does not.",
                param="tools",
            )
        return None
    client.require_enabled("mcp_servers")
    servers = [
        _server(server, f"mcp_servers[{index}]", client, toolsets)
        for index, server in enumerate(req.mcp_servers)
    ]
    names = [s.label for s in servers]
    if len(set(names)) < len(names):
        raise InvalidRequestError("Each MCP server needs its own `name`.", param="mcp_servers")
    unknown = set(toolsets) - set(names)
    if unknown:
        raise InvalidRequestError(
            f"`mcp_toolset` names the MCP server `{sorted(unknown)[0]}`, which `mcp_servers` "
            "does not.",
            param="tools",
        )
    on = [s for s in servers if s.allowed != frozenset()]  # a server turned off: left out
    return McpRequest(on) if on else None


def _toolsets(tools: list[Block] | None) -> dict[str, Block]:
    found: dict[str, Block] = {}
    for index, tool in enumerate(tools or ()):
        if tool.get("type") == "mcp_toolset":
            name = tool.get("mcp_server_name")
            if not isinstance(name, str):
                raise InvalidRequestError(
                    "`mcp_toolset` needs `mcp_server_name`.", param=f"tools[{index}]"
                )
            found[name] = tool
    return found


def _server(server: Any, param: str, client: McpClient, toolsets: dict[str, Block]) -> McpTool:
    if not isinstance(server, dict) or server.get("type") != "url":
        raise InvalidRequestError("An MCP server is `{type: url, name, url}`.", param=param)
    name, url = server.get("name"), server.get("url")
    if not isinstance(name, str) or not LABEL.match(name):
        raise InvalidRequestError(
            "`name` must be 1-64 letters, digits, `_` or `-`.", param=f"{param}.name"
        )
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("An MCP server needs a `url`.", param=f"{param}.url")
    client.check(url, f"{param}.url")
    headers = {}
    token = server.get("authorization_token")
    if token is not None:
        if not isinstance(token, str):
            raise InvalidRequestError(
                "`authorization_token` must be a string.", param=f"{param}.authorization_token"
            )
        headers["Authorization"] = f"Bearer {token}"
    allowed, denied = _enabled(server.get("tool_configuration"), toolsets.get(name), param)
    return McpTool(
        McpServer(name, url, headers), allowed, approval="never", denied=denied, param=param
    )


def _enabled(
    config: Any, toolset: Block | None, param: str
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The tools on (None: all) and off, from the server's ``tool_configuration`` or an
    ``mcp_toolset`` naming it."""
    config = config or {}
    if not isinstance(config, dict):
        raise InvalidRequestError(
            "`tool_configuration` must be an object.", param=f"{param}.tool_configuration"
        )
    if config.get("enabled") is False:
        return frozenset(), frozenset()
    allowed = config.get("allowed_tools")
    on = frozenset(str(n) for n in allowed) if isinstance(allowed, list) else None
    if toolset is None:
        return on, frozenset()
    configs = toolset.get("configs") or {}
    default = (toolset.get("default_config") or {}).get("enabled", True)
    named = {n: c.get("enabled", default) for n, c in configs.items() if isinstance(c, dict)}
    if not default:
        return frozenset(n for n, e in named.items() if e), frozenset()
    return on, frozenset(n for n, e in named.items() if not e)


def tool_use_name(block: Block) -> str:
    """The model's function name for an ``mcp_tool_use`` block of an earlier turn."""
    return chat_name(str(block.get("server_name")), str(block.get("name")))
