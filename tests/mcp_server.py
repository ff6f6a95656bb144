"""A real MCP server for tests: the ``mcp`` SDK's own ``MCPServer`` over streamable HTTP
on loopback, in a thread of the test process.

Paths: ``/mcp`` the server; ``/moved`` a same-origin 307 to ``/mcp`` (a redirect the SDK
follows, which corral must check again against its allowed prefixes).
"""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

SECRET = "Zanzibar-42"  # only the server knows it: an answer that says it used the call
HANG_S = 120
BIG_BYTES = 50 * 1024 * 1024


def _server() -> MCPServer:
    server = MCPServer("corral-test")

    @server.tool()
    def vault_code(vault: str) -> str:
        """Look up the access code of a vault by its name."""
        return f"The access code of vault {vault} is {SECRET}."

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    async def hang(seconds: int = HANG_S) -> str:
        """Wait, then answer (a server that does not answer in time)."""
        import anyio

        await anyio.sleep(seconds)
        return "late"

    @server.tool()
    def huge() -> str:
        """Answer 50 MB."""
        return "x" * BIG_BYTES

    return server


async def _moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/mcp", status_code=307)


class McpTestServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        mcp_app = _server().streamable_http_app(stateless_http=True, json_response=True)
        app = Starlette(
            routes=[
                Route("/moved", _moved, methods=["GET", "POST", "DELETE"]),
                Mount("/", app=mcp_app),
            ],
            lifespan=lambda _: mcp_app.router.lifespan_context(mcp_app),
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> McpTestServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError("the MCP test server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
