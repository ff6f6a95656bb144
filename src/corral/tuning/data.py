"""Chat-format JSONL for fine-tuning, checked line by line.

Each line is ``{"messages": [...], "tools": [...]?}``; every error names its line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corral.core.jsondepth import MAX_DEPTH, nested_deeper

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_LINE_BYTES = 1 << 20

Example = list[dict[str, Any]]


class DataError(ValueError):
    def __init__(self, line: int | None, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}" if line is not None else problem)


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ValueError("only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ValueError("`content` must be a string or a list of text parts")


def parse_line(line: int, raw: bytes) -> Example:
    if len(raw) > MAX_LINE_BYTES:
        raise DataError(line, f"the line is longer than {MAX_LINE_BYTES} bytes")
    if nested_deeper(raw):  # json.loads raised RecursionError on 100,000 levels
        raise DataError(line, f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(line, f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(line, "expected a JSON object with a `messages` list")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(line, "missing `messages` (a non-empty list)")
    unknown = set(obj) - {"messages", "tools", "parallel_tool_calls"}
    if unknown:
        raise DataError(line, f"unknown key `{sorted(unknown)[0]}`")
    out: Example = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(line, f"messages[{i}] is not an object")
        role = m.get("role")
        if role not in ROLES:
            raise DataError(line, f"unknown role `{role}` in messages[{i}]")
        try:
            content = _text(m.get("content"))
        except ValueError as exc:
            raise DataError(line, f"messages[{i}]: {exc}") from None
        if content is None and not (role == "assistant" and m.get("tool_calls")):
            raise DataError(line, f"messages[{i}] has no `content`")
        message: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": content or "",
        }
        for key in ("tool_calls", "tool_call_id", "name"):
            if key in m:
                message[key] = m[key]
        out.append(message)
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(line, "no assistant message: nothing to learn")
    return out


def read_examples(path: Path, max_examples: int) -> list[Example]:
    examples: list[Example] = []
    with path.open("rb") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if len(examples) == max_examples:
                raise DataError(line, f"more than {max_examples} examples")
            examples.append(parse_line(line, raw))
    if not examples:
        raise DataError(None, "the file has no examples")
    return examples


def check_upload(path: Path) -> None:
    """What a fine-tuning file must be before it is stored: lines a reader can take in
    (bounded length and nesting). The rest is checked when a job validates it."""
    with path.open("rb") as f:
        for line, raw in enumerate(f, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(line, f"the line is longer than {MAX_LINE_BYTES} bytes")
            if nested_deeper(raw):
                raise DataError(line, f"JSON nested more than {MAX_DEPTH} levels deep")


def example_lines(path: Path) -> list[int]:
    """The line number of each example (blank lines skipped), for error messages."""
    with path.open("rb") as f:
        return [n for n, raw in enumerate(f, start=1) if raw.strip()]
