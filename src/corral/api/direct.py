"""The generation endpoints of every dialect (Chat Completions, completions, embeddings,
Responses, Messages), answered without Starlette's router and FastAPI's dependency
injection.

Every request to them waits on this path before its first token. Routing through the
route table, FastAPI's request wrappers and ``solve_dependencies`` cost about 0.45 ms a
request here (measured between the auth middleware and the handler, against a no-work
upstream); a dictionary lookup costs nothing. The routes stay registered on their
routers, so the OpenAPI schema, other methods (405) and tests of the router see them;
auth still wraps this middleware, and errors answer through the
same ``response_for`` as the app's exception handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.api.deps import Services
from corral.api.errors import response_for

Handler = Callable[[Request, Services], Awaitable[Response | BaseModel]]


def table(*routers: APIRouter) -> dict[tuple[str, str], Handler]:
    """(method, path) → endpoint of every route on these routers, as they declare them
    (so the table cannot drift from the paths the schema shows)."""
    return {
        (method, route.path): cast(Handler, route.endpoint)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and not route.param_convertors  # exact paths only
        for method in route.methods or ()
    }


class DirectRoutes:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            result = await handler(request, request.app.state.services)
        except Exception as exc:  # what the app's exception handlers would answer
            result = response_for(request, exc)
        await _response(result)(scope, receive, send)


def _response(result: Response | BaseModel) -> Response:
    """A handler's answer as the router would send it: a model (a count, say) as its
    JSON (FastAPI's ``response_model`` of the same class says nothing more)."""
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(), media_type="application/json")
    return result
