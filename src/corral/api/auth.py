"""Authentication for every route but /health and /ready, as ASGI middleware.

Middleware rather than a per-route dependency so that nothing can be added to the app
without auth: unknown paths, docs and the OpenAPI schema are covered too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.accounts.keys import ANONYMOUS, KeyService, Principal
from corral.api.errors import response_for
from corral.core.errors import AuthenticationError, CorralError

OPEN_PATHS = frozenset({"/health", "/ready"})


class AuthMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyService) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        principal = ANONYMOUS
        if await self.keys.auth_enabled():
            try:
                principal = await self.keys.authenticate(credentials(scope))
            except CorralError as exc:
                await response_for(Request(scope), exc)(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def credentials(scope: Scope) -> str | None:
    """The ``Authorization`` header; else Anthropic's ``x-api-key`` (what its SDKs and
    Claude Code send), as a bearer token."""
    api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
        if name == b"x-api-key":
            api_key = "Bearer " + value.decode("latin-1")
    return api_key


def principal_of(request: Request) -> Principal:
    """Who is calling, as the middleware found it. A request that did not pass through
    it (a route mounted around it, a test app without it) is refused, never let in as
    an admin: fail closed."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise AuthenticationError("No credentials were checked for this request.")
    return principal
