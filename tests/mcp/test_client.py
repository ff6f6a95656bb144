"""corral's MCP client against the SDK's own server on loopback: listing, calls, the
allow-list (also after a redirect), and the bounds (a server that hangs, one that answers
50 MB)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from corral.core.config import McpSettings
from corral.core.errors import ExternalConnectorError, InvalidRequestError
from corral.mcp.client import McpClient, McpServer, allowed
from tests.conftest import free_port
from tests.mcp_server import SECRET, McpTestServer


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(free_port()).start()
    yield server
    server.stop()


def client_for(server: McpTestServer, **settings: object) -> McpClient:
    base = f"http://127.0.0.1:{server.port}/"
    return McpClient(McpSettings.model_validate({"allowed_urls": base, **settings}))


def test_prefixes_match_scheme_host_port_and_path() -> None:
    prefixes = ["http://127.0.0.1:9000/mcp/"]
    assert allowed("http://127.0.0.1:9000/mcp/x", prefixes)
    assert not allowed("http://127.0.0.1:9001/mcp/x", prefixes)
    assert not allowed("https://127.0.0.1:9000/mcp/x", prefixes)
    assert not allowed("http://127.0.0.1:9000/admin", prefixes)
    assert not allowed("http://127.0.0.1:9000/mcp/../admin", prefixes)
    assert not allowed("http://127.0.0.1:9000/mcp/%2e%2e/admin", prefixes)
    assert not allowed("http://user:pw@127.0.0.1:9000/mcp/x", prefixes)
    assert not allowed("http://127.0.0.1:9000.evil.example/mcp/x", prefixes)
    assert not allowed("file:///etc/passwd", prefixes)
    assert not allowed("not a url", [])


def test_nothing_is_allowed_by_default() -> None:
    client = McpClient(McpSettings())
    with pytest.raises(InvalidRequestError, match="CORRAL_MCP__ALLOWED_URLS"):
        client.check("http://127.0.0.1:9000/mcp", "tools[0].server_url")


async def test_tools_are_listed_and_called(mcp_server: McpTestServer) -> None:
    client = client_for(mcp_server)
    server = McpServer("test", mcp_server.url, {"Authorization": "Bearer t0ken"})
    tools = {t.name: t for t in await client.list_tools(server, "tools[0]")}
    assert {"vault_code", "add", "hang", "huge"} <= set(tools)
    assert tools["add"].input_schema["required"] == ["a", "b"]
    outcome = await client.call(server, "vault_code", {"vault": "north"})
    assert outcome.error is None and outcome.output is not None and SECRET in outcome.output
    assert (await client.call(server, "add", {"a": 2, "b": 40})).output == "42"


async def test_a_tool_error_is_the_calls_error(mcp_server: McpTestServer) -> None:
    client = client_for(mcp_server)
    outcome = await client.call(McpServer("t", mcp_server.url), "add", {"a": "x"})
    assert outcome.output is None and outcome.error is not None
    assert outcome.error["type"] == "mcp_tool_execution_error"


async def test_a_server_that_hangs_is_cut_off(mcp_server: McpTestServer) -> None:
    client = client_for(mcp_server, timeout_s=1.5)
    started = time.monotonic()
    outcome = await client.call(McpServer("t", mcp_server.url), "hang", {})
    assert time.monotonic() - started < 10
    assert outcome.error is not None and outcome.error["code"] == 504


async def test_a_50_mb_answer_is_cut_off(mcp_server: McpTestServer) -> None:
    client = client_for(mcp_server, max_response_bytes=1 << 20)
    outcome = await client.call(McpServer("t", mcp_server.url), "huge", {})
    assert outcome.output is None and outcome.error is not None
    assert "1048576 bytes" in outcome.error["message"]


async def test_a_redirect_outside_the_prefix_is_refused(mcp_server: McpTestServer) -> None:
    """``/moved`` answers 307 to ``/mcp``: followed by the SDK (same origin), refused by
    corral (outside the allowed ``/moved`` prefix)."""
    base = f"http://127.0.0.1:{mcp_server.port}"
    client = McpClient(McpSettings(allowed_urls=f"{base}/moved", timeout_s=5))
    with pytest.raises(ExternalConnectorError) as refused:
        await client.list_tools(McpServer("t", f"{base}/moved"), "tools[0]")
    assert refused.value.status == 424
    both = McpClient(McpSettings(allowed_urls=f"{base}/moved,{base}/mcp", timeout_s=5))
    assert await both.list_tools(McpServer("t", f"{base}/moved"), "tools[0]")
