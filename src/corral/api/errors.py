"""One place that turns every failure into the dialect's error object: OpenAI's
``{"error": {message, type, param, code}}``, or Anthropic's ``{"type": "error", "error":
{type, message}}`` on the Messages API's routes (and on ``/v1/models`` asked with an
``anthropic-version`` header)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from corral.core.errors import CorralError, InvalidRequestError
from corral.core.field_errors import FieldError, invalid_field
from corral.protocol.messages import error_body, error_status

log = logging.getLogger(__name__)
PARAM_SOURCES = ("query", "path", "header", "cookie")


def speaks_anthropic(path: str, headers: Headers) -> bool:
    if path.startswith("/v1/messages"):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in headers


def error_response(exc: CorralError, anthropic: bool = False) -> JSONResponse:
    if anthropic:
        status = error_status(exc.status)[0]
        message = exc.anthropic_message if isinstance(exc, FieldError) else exc.message
        body = error_body(exc.status, message)
        return JSONResponse(body, status_code=status, headers=exc.headers)
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)


def validation_error(exc: ValidationError | RequestValidationError) -> InvalidRequestError:
    errors = [dict(e) for e in exc.errors()]
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if isinstance(exc, RequestValidationError) and loc and loc[0] in PARAM_SOURCES:
            error["loc"] = loc[1:]  # FastAPI's "query.limit" is OpenAI's param "limit"
    return invalid_field(errors)


def http_error(request: Request, exc: HTTPException) -> CorralError:
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    error = InvalidRequestError(message, headers=dict(exc.headers or {}))
    error.status = exc.status_code
    return error


def response_for(request: Request, exc: Exception) -> JSONResponse:
    """The answer to any exception a handler raised (the app's handlers, the direct
    routes and the auth middleware all answer through this)."""
    anthropic = speaks_anthropic(request.url.path, request.headers)
    if isinstance(exc, CorralError):
        return error_response(exc, anthropic)
    if isinstance(exc, ValidationError | RequestValidationError):
        return error_response(validation_error(exc), anthropic)
    if isinstance(exc, HTTPException):
        return error_response(http_error(request, exc), anthropic)
    log.error("unhandled error", exc_info=exc)
    error = CorralError("The server had an error processing your request.")
    return error_response(error, anthropic)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return response_for(request, exc)

    for kind in (CorralError, ValidationError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle)
