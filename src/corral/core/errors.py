"""Typed errors raised by the services; the API maps each to OpenAI's error object."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


class CorralError(Exception):
    """Base error: carries everything OpenAI's error object needs."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(CorralError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameterError(InvalidRequestError):
    code = "unsupported_parameter"


class ContextLengthExceededError(InvalidRequestError):
    code = "context_length_exceeded"


class RequestTooLargeError(InvalidRequestError):
    status = 413  # HTTP's Content Too Large; the error object stays OpenAI's
    code = "request_too_large"


class NotFoundError(CorralError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class OverloadedError(CorralError):
    """The server is at its admission bound; the client should retry shortly."""

    status = 503
    type = "server_error"
    code = "server_overloaded"


class EngineUnavailableError(CorralError):
    status = 503
    type = "server_error"
    code = "engine_unavailable"


class EngineError(CorralError):
    status = 500
    type = "server_error"
    code = "engine_error"


class AuthenticationError(CorralError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(CorralError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class RateLimitError(CorralError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class InsufficientQuotaError(CorralError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class ConflictError(CorralError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class ExternalConnectorError(CorralError):
    """A server corral connects to for a request (an MCP server) failed it: OpenAI's
    424 (Failed Dependency)."""

    status = 424
    type = "external_connector_error"


class ModelShutdownError(NotFoundError):
    """A snapshot past its shutdown date; the message names its replacement."""

    code = "model_shutdown"


class ModelNotAvailableError(CorralError):
    """The model is in the catalog but cannot be loaded here (not pulled, too big)."""

    status = 503
    type = "server_error"
    code = "model_not_available"


def param_of(loc: tuple[int | str, ...]) -> str | None:
    """Pydantic's error location as OpenAI writes a param: ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("body",):
            out += f".{part}" if out else str(part)
    return out or None


# What a field expected, by pydantic's error type, in OpenAI's words for a wrong type
# ("Invalid type for 'max_tokens': expected an integer, but got a string instead.").
EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}


# A JSON value's type in OpenAI's words (bool before int: a bool is an int in Python).
JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a decimal number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_type(value: Any) -> str:
    for kind, words in JSON_TYPES:
        if isinstance(value, kind):
            return words
    return "null" if value is None else type(value).__name__


# The parts pydantic adds to an error's location inside a union: a member's type
# (``str``, ``list[TextPart]``, ``literal[...]``) or model class name; not OpenAI's param.
UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\]|function-.*|[A-Z]\w*)$")


def _field_loc(error: Mapping[str, Any]) -> tuple[int | str, ...]:
    loc = tuple(error.get("loc", ()))
    return tuple(p for p in loc if not (isinstance(p, str) and UNION_TAG.match(p)))


def invalid_field(errors: Sequence[Mapping[str, Any]]) -> InvalidRequestError:
    """A wire model's validation errors (pydantic's) as OpenAI says the first: a wrong
    JSON type is ``invalid_type`` ("expected a string or an array" where a union allows
    either), anything else an invalid value; a union's member tags are not in the param."""
    outer = _field_loc(errors[0])
    # A union member that matched the outer type and failed inside says more.
    inner = [e for e in errors if _field_loc(e)[: len(outer)] == outer]
    first = max(inner, key=lambda e: len(_field_loc(e)))
    loc = _field_loc(first)
    alike = [e for e in errors if _field_loc(e) == loc]
    expected = [EXPECTED.get(str(e.get("type"))) for e in alike]
    if None in expected:
        return invalid_value(loc, str(first.get("msg", "Invalid request")))
    param = param_of(loc)
    where = f"'{param}'" if param else "the request body"
    wanted = " or ".join(dict.fromkeys(w for w in expected if w))
    got = _json_type(first.get("input"))
    message = f"Invalid type for {where}: expected {wanted}, but got {got} instead."
    return InvalidRequestError(message, param=param, code="invalid_type")


def invalid_value(loc: tuple[int | str, ...], message: str) -> InvalidRequestError:
    """A wire model's first validation error as OpenAI words it (API and batch lines)."""
    param = param_of(loc)
    where = f"'{param}'" if param else "the request body"
    return InvalidRequestError(f"Invalid value for {where}: {message}", param=param)
