"""Reading JSON bodies: size-bounded before parsing, errors in OpenAI's shape."""

from __future__ import annotations

from typing import TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel

from corral.core.errors import InvalidRequestError, RequestTooLargeError
from corral.core.field_errors import strictly
from corral.core.jsondepth import MAX_DEPTH, nested_deeper

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is larger than the limit of {limit} bytes.", param="body"
    )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # also bounds chunked bodies with no length
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[M], limit: int) -> M:
    return parse_model(await read_body(request, limit), model)


def parse_model(raw: bytes, model: type[M]) -> M:
    if nested_deeper(raw):
        raise InvalidRequestError(
            f"The JSON body nests arrays or objects more than {MAX_DEPTH} levels deep.",
            code="json_too_deep",
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request. Send valid JSON.",
            code="invalid_json",
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    # Strict, as OpenAI's and Anthropic's APIs are: "5" for an integer is a 400, not 5.
    # From orjson's objects, not pydantic's own JSON parser: that one keeps an integer
    # past 64 bits as a Python int in free-form fields (a tool's schema, metadata), which
    # no engine request can then be written with (a 500); orjson reads it as a float.
    return strictly(model, data)
