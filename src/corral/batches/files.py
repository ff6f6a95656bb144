"""A batch's output and error files, written from its finished lines when it ends: one
JSONL line per request in OpenAI's shape, each with its ``custom_id``, in input order.
Requests that never ran (the batch expired or was cancelled) go to the error file with
``batch_expired`` / ``batch_cancelled``."""

from __future__ import annotations

from typing import Any

import orjson

from corral.batches.lines import Line
from corral.core.ids import new_id
from corral.storage.tables import BatchLineRow

NOT_RUN = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "cancelled": ("batch_cancelled", "This request was not executed: the batch was cancelled."),
    "budget": (
        "insufficient_quota",
        "This request was not executed: the batch's project has no budget left.",
    ),
    "failed": ("batch_failed", "This request was not executed: the batch's input is gone."),
}


def _answered(row: BatchLineRow) -> dict[str, Any]:
    response = {"status_code": row.status_code, "request_id": row.request_id, "body": row.body}
    return {"id": row.id, "custom_id": row.custom_id, "response": response, "error": None}


def _not_run(line: Line, why: str) -> dict[str, Any]:
    code, message = NOT_RUN[why]
    error = {"code": code, "message": message}
    return {
        "id": new_id("batch_req"),
        "custom_id": line.custom_id,
        "response": None,
        "error": error,
    }


def output_lines(
    lines: list[Line], done: dict[int, BatchLineRow], why: str
) -> tuple[bytes, bytes, int, int]:
    """(output JSONL, error JSONL, completed, failed); ``why``: what became of the
    requests that did not run."""
    out, err = bytearray(), bytearray()
    completed = failed = 0
    for line in lines:
        row = done.get(line.index)
        if row is not None and row.ok:
            out += orjson.dumps(_answered(row)) + b"\n"
            completed += 1
            continue
        record = _answered(row) if row is not None else _not_run(line, why)
        err += orjson.dumps(record) + b"\n"
        failed += 1
    return bytes(out), bytes(err), completed, failed
