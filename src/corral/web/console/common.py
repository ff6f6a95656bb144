"""What every console page shares: who is signed in, the CSRF token, strict headers.

The console renders on the server (Jinja, every value escaped) and its scripts call the
JSON API with the session cookie; nothing here re-implements a service's rules: pages
read through the same services as the API, scoped by the same owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request
from starlette.responses import HTMLResponse, Response

from corral.accounts.keys import Principal
from corral.accounts.sessions import ConsoleSession
from corral.api.auth import SESSION_COOKIE, principal_of
from corral.api.deps import ServicesDep
from corral.files import Owner
from corral.storage.tables import Project

# Scripts, styles and requests only from this origin; no inline script or style at all,
# so an injected tag cannot run even if escaping were ever missed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NAV = (
    ("playground", "Playground"),
    ("keys", "Keys"),
    ("usage", "Usage"),
    ("fine-tuning", "Fine-tuning"),
    ("evals", "Evals"),
    ("batches", "Batches"),
    ("files", "Files"),
    ("vector-stores", "Vector stores"),
)


@cache
def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("corral.web", "templates"),
        autoescape=True,  # model output, file contents and names are all user input
        undefined=jinja2.StrictUndefined,
    )


@dataclass
class Console:
    """The signed-in browser (or an API client reading a page with its key)."""

    principal: Principal
    session: ConsoleSession | None
    open_mode: bool
    new_token: str | None = None  # an open-mode session made by this request
    projects: list[Project] = field(default_factory=list)  # an admin's to work in

    @property
    def project_name(self) -> str | None:
        pid = self.principal.project_id
        return next((p.name for p in self.projects if p.id == pid), pid)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""

    @property
    def owner(self) -> Owner:
        return Owner(self.principal.org_id, self.principal.project_id)

    @property
    def who(self) -> str:
        p = self.principal
        if self.open_mode:
            return "open mode (no keys configured)"
        if p.is_admin:
            return f"admin in project {self.project_name}" if p.project_id else "admin"
        return f"project {self.project_name}"

    @property
    def can_switch(self) -> bool:
        """An admin (or open mode) with a session may work in any one project."""
        return self.principal.is_admin and self.session is not None


async def console_of(request: Request, services: ServicesDep) -> Console:
    principal = principal_of(request)
    session = request.scope.get("state", {}).get("console_session")
    open_mode = not await services.keys.auth_enabled()
    console = Console(principal, session, open_mode)
    if session is None and open_mode:
        # No keys: the console opens without sign-in, as the API does, but its forms
        # still need a session for their CSRF token.
        console.new_token, console.session = await services.sessions.create(None)
    if console.can_switch or principal.project_id is not None:
        projects = await services.keys.list_projects()
        # an admin picks among all; a project key's page names its own
        console.projects = (
            projects
            if console.can_switch
            else [p for p in projects if p.id == principal.project_id]
        )
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,  # scripts never see it
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request, console: Console, name: str, page: str, status: int = 200, **context: Any
) -> HTMLResponse:
    html = (
        templates()
        .get_template(name)
        .render(console=console, page=page, nav=NAV, title=context.pop("title", page), **context)
    )
    response = HTMLResponse(html, status_code=status)
    if console.new_token is not None:
        ttl = request.app.state.services.settings.console.session_ttl_s
        set_session_cookie(response, request, console.new_token, ttl)
    secure(response)
    return response
