"""Typed errors raised by the services; the API maps each to OpenAI's error object."""

from __future__ import annotations


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
