"""Sign-in with a corral key, sign-out, and the console's static files."""

from __future__ import annotations

import hmac
import secrets
from importlib import resources

from fastapi import APIRouter, Form, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from corral.api.auth import SESSION_COOKIE
from corral.api.deps import ServicesDep
from corral.core.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from corral.web.console.common import ConsoleDep, secure, set_session_cookie, templates

router = APIRouter(prefix="/console", include_in_schema=False)

# Before a session exists the sign-in form is protected by a double-submitted token: a
# cookie (SameSite=Strict) and a form field that must match.
SIGNIN_COOKIE = "corral_signin"
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}
# /favicon.ico, which browsers ask every site for (with no key: api.auth's OPEN_PATHS).
icon_router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/playground"


def _form(request: Request, error: str | None, target: str, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    html = (
        templates()
        .get_template("console_signin.html")
        .render(title="Sign in", error=error, csrf=token, next=target)
    )
    response = HTMLResponse(html, status_code=status)
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=900,
        path="/console/sign-in",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return secure(response)


@router.get("/sign-in")
async def sign_in_page(
    request: Request, services: ServicesDep, next: str | None = None
) -> Response:
    if not await services.keys.auth_enabled():
        return secure(RedirectResponse(_safe_next(next), 303))  # open mode: no sign-in
    return _form(request, None, _safe_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    services: ServicesDep,
    key: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    target = _safe_next(next)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return _form(request, "The form expired: please sign in again.", target, 403)
    try:
        key_hash, _ = await services.keys.sign_in(key)
    except AuthenticationError as exc:
        return _form(request, exc.message, target, 401)
    token, _session = await services.sessions.create(key_hash)
    response = RedirectResponse(target, 303)
    set_session_cookie(response, request, token, services.settings.console.session_ttl_s)
    response.delete_cookie(SIGNIN_COOKIE, path="/console/sign-in")
    return secure(response)


@router.post("/sign-out")
async def sign_out(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await services.sessions.end(token)
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return secure(response)


@router.post("/project")
async def work_in_project(
    services: ServicesDep,
    console: ConsoleDep,
    project_id: str = Form(""),
    next: str = Form(""),
) -> Response:
    """An admin's session works in one project (its files, jobs, runs) or in none."""
    if not console.can_switch or console.session is None:
        raise PermissionDeniedError("Only an admin's console session can work in a project.")
    if project_id and project_id not in {p.id for p in console.projects}:
        raise NotFoundError(f"No project `{project_id}`.", param="project_id")
    await services.sessions.work_in(console.session, project_id or None)
    return secure(RedirectResponse(_safe_next(next), 303))


@router.get("")
async def console_home() -> Response:
    return secure(RedirectResponse("/console/playground", 303))


@router.get("/static/{name}")
async def static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    folder = resources.files("corral.web") / "static"
    if suffix not in STATIC_TYPES or "/" in name or name.startswith("."):
        raise NotFoundError(f"No static file `{name}`.")
    entry = folder / name
    if not entry.is_file():
        raise NotFoundError(f"No static file `{name}`.")
    response = Response(entry.read_bytes(), media_type=STATIC_TYPES[suffix])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@icon_router.get("/favicon.ico")
async def favicon() -> Response:
    """The console's icon (the pages link it; a browser asks here for anything else)."""
    return await static("favicon.svg")
