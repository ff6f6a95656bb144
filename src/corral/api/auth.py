"""Authentication for every route but /health and /ready, as ASGI middleware.

Middleware rather than a per-route dependency so that nothing can be added to the app
without auth: unknown paths, docs and the OpenAPI schema are covered too.

A console session (an HttpOnly cookie naming a server-side session) is the browser's
credential: its key is checked again on every request, and every state-changing request
made with it must carry the session's CSRF token (the ``X-CSRF-Token`` header, or a
``csrf_token`` field of a form), else 403. A request with an ``Authorization`` header is
an API client's: the cookie is not read.
"""

from __future__ import annotations

from dataclasses import replace
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.accounts.keys import ANONYMOUS, KeyService, Principal
from corral.accounts.sessions import ConsoleSession, SessionStore
from corral.api.errors import response_for
from corral.core.errors import AuthenticationError, CorralError, PermissionDeniedError

OPEN_PATHS = frozenset({"/health", "/ready", "/favicon.ico"})  # probes; the icon
SESSION_COOKIE = "corral_session"
CSRF_FIELD = "csrf_token"
CONSOLE = "/console"
# The sign-in page checks its own (double-submitted) token; static files are public.
CONSOLE_PUBLIC = ("/console/sign-in", "/console/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_LIMIT = 64 * 1024  # a console form; uploads are multipart and send the header


def _csrf_refused() -> PermissionDeniedError:
    return PermissionDeniedError(
        "Missing or wrong CSRF token: a console request that changes something must carry "
        "the session's token.",
        code="csrf_failed",
    )


class AuthMiddleware:
    def __init__(
        self, app: ASGIApp, keys: KeyService, sessions: SessionStore | None = None
    ) -> None:
        self.app = app
        self.keys = keys
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(CONSOLE_PUBLIC):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            header = credentials(scope)
            session = None if header is not None else await self._session(scope)
            if session is not None:
                principal, console = session
                if scope["method"] not in SAFE_METHODS:
                    receive = await checked_csrf(scope, receive, console)
                state["principal"], state["console_session"] = principal, console
                await self.app(scope, receive, send)
                return
            principal = ANONYMOUS
            if await self.keys.auth_enabled():
                if header is None and _console_page(scope):
                    target = quote(path, safe="/")
                    redirect = RedirectResponse(f"/console/sign-in?next={target}", 303)
                    await redirect(scope, receive, send)
                    return
                principal = await self.keys.authenticate(header)
            elif path.startswith(CONSOLE) and scope["method"] not in SAFE_METHODS:
                raise _csrf_refused()  # open mode too: console forms need a session
        except CorralError as exc:
            await response_for(Request(scope), exc)(scope, receive, send)
            return
        state["principal"] = principal
        await self.app(scope, receive, send)

    async def _session(self, scope: Scope) -> tuple[Principal, ConsoleSession] | None:
        """The console session the cookie names and who it signs in, or None (no cookie,
        an ended session, or its key revoked since: the session ends with it)."""
        token = session_token(scope)
        if self.sessions is None or token is None:
            return None
        session = await self.sessions.get(token)
        if session is None:
            return None
        if session.key_hash is None:  # an open-mode session stops when keys appear
            if await self.keys.auth_enabled():
                return None
            principal = ANONYMOUS
        else:
            try:
                principal = await self.keys.authenticate_hash(session.key_hash)
            except AuthenticationError:
                await self.sessions.end(token)
                return None
        if principal.is_admin and session.project_id is not None:
            # An admin working in one project: its files, jobs, runs and batches, as that
            # project's keys see them (and its requests billed to it).
            principal = replace(principal, project_id=session.project_id)
        return principal, session


def _console_page(scope: Scope) -> bool:
    """A console page a browser navigates to: sent to sign in rather than given a 401."""
    path: str = scope["path"]
    return (
        scope["method"] in SAFE_METHODS
        and (path == CONSOLE or path.startswith(CONSOLE + "/"))
        and not path.startswith(CONSOLE + "/api/")
    )


def session_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                continue
            if SESSION_COOKIE in jar:
                return jar[SESSION_COOKIE].value
    return None


async def checked_csrf(scope: Scope, receive: Receive, session: ConsoleSession) -> Receive:
    """Refuses (403) a state-changing request without the session's CSRF token. A form's
    body is read to find its field and replayed to the route."""
    headers = dict(scope["headers"])
    if session.csrf_matches(_text(headers.get(b"x-csrf-token"))):
        return receive
    content_type = _text(headers.get(b"content-type")) or ""
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise _csrf_refused()
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise _csrf_refused()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > FORM_LIMIT:
            raise _csrf_refused()
    fields = parse_qs(body.decode("latin-1"), max_num_fields=64)
    if not session.csrf_matches(next(iter(fields.get(CSRF_FIELD, [])), None)):
        raise _csrf_refused()
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


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
