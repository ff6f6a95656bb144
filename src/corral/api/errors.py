"""One place that turns every failure into OpenAI's error object."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from corral.core.errors import CorralError, InvalidRequestError, param_of

log = logging.getLogger(__name__)


def error_response(exc: CorralError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)


def validation_error(exc: ValidationError | RequestValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    param = param_of(tuple(first.get("loc", ())))
    message = first.get("msg", "Invalid request")
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"Invalid value for {where}: {message}", param=param)


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def response_for(request: Request, exc: Exception) -> JSONResponse:
    """The answer to any exception a handler raised (the app's handlers and the direct
    routes both answer through this)."""
    if isinstance(exc, CorralError):
        return error_response(exc)
    if isinstance(exc, ValidationError | RequestValidationError):
        return error_response(validation_error(exc))
    if isinstance(exc, HTTPException):
        return http_error(request, exc)
    log.error("unhandled error", exc_info=exc)
    return error_response(CorralError("The server had an error processing your request."))


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return response_for(request, exc)

    for kind in (CorralError, ValidationError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle)
