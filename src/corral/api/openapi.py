"""The OpenAPI document, made true.

Handlers read their JSON bodies by hand (``api.body``: bounded before parsing, errors in
the dialect's shape), so FastAPI cannot see them. ``@reads(Model)`` names the wire model an
endpoint reads; the document is generated from stand-ins of those routes that declare the
body, so FastAPI names and references the schemas as it does for any body. Errors are
declared as what corral answers (4XX/5XX in the dialect's error object), never FastAPI's
422, and streamed answers carry their content type.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_type_hints

from fastapi import Body, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from corral.api.auth import OPEN_PATHS
from corral.protocol.errors import AnthropicErrorResponse, ErrorResponse

F = TypeVar("F", bound=Callable[..., Any])
PARAM = re.compile(r"\{(\w+)\}")  # a path parameter, as the document writes it
BODY = "__corral_body__"

# One server-sent event as OpenAPI reads a stream (3.1: ``schema`` is each event; fields as
# 3.2 names them); its ``data`` is the dialect's chunk or event object, as JSON text.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}
# Added to a route's 200 answer: what it sends with ``"stream": true``.
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}
}

# /v1/files' body: a multipart form (streamed to disk by ``api.multipart``).
UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string"},
                    },
                    "required": ["file", "purpose"],
                }
            }
        },
    }
}


def content_of(
    media_type: str, schema: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's 200 answer in a media type other than JSON."""
    return {200: {"content": {media_type: {"schema": schema or {"type": "string"}}}}}


def reads(model: type[BaseModel]) -> Callable[[F], F]:
    """Declares the JSON body an endpoint reads by hand, for the document only: the
    handler still reads and validates it itself."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, BODY, model)
        return endpoint

    return mark


def body_model(route: RouteContext) -> type[BaseModel] | None:
    if not isinstance(route.original_route, APIRoute):
        return None
    model: type[BaseModel] | None = getattr(route.endpoint, BODY, None)
    return model


def stand_in(route: RouteContext, model: type[BaseModel]) -> APIRoute:
    """The route as FastAPI would see it if it took ``model`` as its body."""
    original = route.original_route
    assert isinstance(original, APIRoute)
    hints = get_type_hints(original.endpoint, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(original.endpoint).parameters.values()
    ]
    body = inspect.Parameter(
        "body", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[model, Body()]
    )

    async def endpoint(**_: Any) -> None:  # never called: the document's view of the route
        return None

    endpoint.__signature__ = inspect.Signature([*params, body])  # type: ignore[attr-defined]
    return APIRoute(
        str(route.path),
        endpoint,
        methods=route.methods,
        response_model=route.response_model,
        status_code=route.status_code,
        tags=route.tags,
        dependencies=route.dependencies,
        summary=route.summary,
        description=route.description,
        response_description=route.response_description,
        responses=route.responses,
        deprecated=route.deprecated,
        name=str(route.name),
        operation_id=route.operation_id,
        response_class=route.response_class,
        openapi_extra=route.openapi_extra,
        generate_unique_id_function=route.generate_unique_id_function,
    )


def error_schema(path: str) -> dict[str, Any]:
    openai = {"$ref": "#/components/schemas/ErrorResponse"}
    anthropic = {"$ref": "#/components/schemas/AnthropicErrorResponse"}
    if path.startswith("/v1/messages"):
        return anthropic
    if path.startswith("/v1/models"):  # Anthropic's shape when asked with anthropic-version
        return {"anyOf": [openai, anthropic]}
    return openai


def has_id(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    schema = operation["responses"].get("200", {}).get("content", {})
    ref = schema.get("application/json", {}).get("schema", {}).get("$ref", "")
    return "id" in schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})


def add_links(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A create's answer links to the operations its id addresses (POST /v1/files to
    /v1/files/{file_id} and below), as OpenAPI links: what a client generator, or a
    fuzzer's stateful phase, follows from an object to its uses."""
    for path, operations in paths.items():
        create = operations.get("post")
        if create is None or not has_id(create, schemas):
            continue
        known = PARAM.findall(path)
        links: dict[str, Any] = {}
        for target, targets in paths.items():
            params = PARAM.findall(target)
            new = [p for p in params if p not in known]
            if len(new) != 1 or not target.startswith(f"{path}/{{{new[0]}}}"):
                continue
            for operation in targets.values():
                values = {name: f"$request.path.{name}" for name in known}
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {**values, new[0]: "$response.body#/id"},
                }
        if links:
            create["responses"]["200"]["links"] = links


def declare_auth(doc: dict[str, Any]) -> None:
    """A key on every operation but the probes (api.auth's middleware): as a bearer token,
    or Anthropic's ``x-api-key`` header. Open mode (no key configured) needs none."""
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "A corral API key."},
        "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    doc["security"] = [{"bearer": []}, {"x-api-key": []}]
    for path in OPEN_PATHS:
        for operation in doc["paths"].get(path, {}).values():
            operation["security"] = []


def document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    routes: list[BaseRoute | RouteContext] = []
    for route in iter_route_contexts(app.routes):
        model = body_model(route)
        routes.append(route if model is None else stand_in(route, model))
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=routes,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, AnthropicErrorResponse):
        for name, schema in (
            model.model_json_schema(ref_template="#/components/schemas/{model}")
            .pop("$defs", {})
            .items()
        ):
            schemas.setdefault(name, schema)
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas[model.__name__].pop("$defs", None)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            answers.pop("422", None)  # FastAPI's validation error: corral answers 400
            error = {"content": {"application/json": {"schema": error_schema(path)}}}
            answers["4XX"] = {"description": "A client error, in the dialect's shape", **error}
            answers["5XX"] = {"description": "A server error, in the dialect's shape", **error}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    add_links(doc["paths"], schemas)
    declare_auth(doc)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
