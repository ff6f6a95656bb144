"""A batch's input file read and checked line by line, before the batch starts: each line
is JSON with a unique ``custom_id``, ``method: POST``, the batch's endpoint as ``url`` and
a ``body``. Errors name the line (1-based) as OpenAI's do; at most ``MAX_ERRORS`` are
kept, which is enough to fix a file and bounds the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from corral.core.jsondepth import MAX_DEPTH, nested_deeper
from corral.protocol.batches import BatchError

MAX_ERRORS = 100
MAX_CUSTOM_ID = 512


@dataclass(frozen=True)
class Line:
    index: int  # 0-based, among the file's requests
    number: int  # the line number in the file, 1-based
    custom_id: str
    body: dict[str, Any]


def _error(code: str, message: str, line: int, param: str | None = None) -> BatchError:
    return BatchError(code=code, message=message, line=line, param=param)


def _check(obj: Any, number: int, endpoint: str) -> BatchError | None:
    if not isinstance(obj, dict):
        return _error("invalid_json_line", "The line is not a JSON object.", number)
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID:
        why = f"`custom_id` must be a string of 1 to {MAX_CUSTOM_ID} characters."
        return _error("missing_required_parameter", why, number, "custom_id")
    if obj.get("method") != "POST":
        return _error("invalid_method", "`method` must be POST.", number, "method")
    if obj.get("url") != endpoint:
        why = f"`url` must be the batch's endpoint, {endpoint}."
        return _error("mismatched_endpoint", why, number, "url")
    body = obj.get("body")
    if not isinstance(body, dict):
        return _error("missing_required_parameter", "`body` must be an object.", number, "body")
    if body.get("stream"):
        why = "A batch request cannot stream: its answer goes to the output file."
        return _error("invalid_request", why, number, "body.stream")
    if body.get("background"):
        why = "A batch request cannot run in the background: the batch is that already."
        return _error("invalid_request", why, number, "body.background")
    unknown = sorted(set(obj) - {"custom_id", "method", "url", "body"})
    if unknown:
        return _error("invalid_request", f"Unknown field `{unknown[0]}`.", number, unknown[0])
    return None


def parse_lines(data: bytes, endpoint: str, max_lines: int) -> tuple[list[Line], list[BatchError]]:
    """The file's requests, and what is wrong with it (empty: nothing)."""
    numbered = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
    if not numbered:
        return [], [_error("empty_file", "The file has no requests.", 1)]
    if len(numbered) > max_lines:
        why = f"The file has {len(numbered)} requests; a batch may have at most {max_lines}."
        return [], [_error("too_many_requests", why, numbered[max_lines][0])]
    lines: list[Line] = []
    errors: list[BatchError] = []
    seen: set[str] = set()
    for index, (number, text) in enumerate(numbered):
        error: BatchError | None = None
        if nested_deeper(text):  # its endpoint's check would recurse past the stack
            error = _error("invalid_json_line", f"Nested over {MAX_DEPTH} levels.", number)
        else:
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                error = _error("invalid_json_line", "Not JSON.", number)
            else:
                error = _check(obj, number, endpoint)
        if error is None and obj["custom_id"] in seen:
            why = f"`custom_id` {obj['custom_id']!r} is used by an earlier line."
            error = _error("duplicate_custom_id", why, number, "custom_id")
        if error is not None:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
            continue
        seen.add(obj["custom_id"])
        lines.append(Line(index, number, obj["custom_id"], obj["body"]))
    return lines, errors
