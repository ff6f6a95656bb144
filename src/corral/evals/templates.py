"""``{{item.field}}`` / ``{{sample.output_text}}`` substitution for eval templates.

A reference is a dotted path with list indexes (``sample.output_tools[0].function.name``)
looked up in plain data; nothing in a template is ever evaluated. Written here rather
than with Jinja because the grammar OpenAI's evals use is only paths, and a path lookup
has no sandbox to escape.
"""

from __future__ import annotations

import json
import re
from typing import Any

REFERENCE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d{1,6}\])*$")
STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
NAMESPACES = frozenset({"item", "sample"})
SAMPLE_FIELDS = frozenset(
    {
        "output_text",
        "output_json",
        "output_tools",
        "output_tool_names",
        "output_tool_arguments",
        "choices",
        "model",
        "finish_reason",
    }
)
MAX_TEMPLATE = 20_000


class TemplateError(ValueError):
    """A template that cannot be used (bad syntax) or rendered (a missing value)."""


def references(template: str) -> list[list[str | int]]:
    """Every path a template names, each as its steps: ``["item", "a", 0]``."""
    return [parse_path(raw) for raw in REFERENCE.findall(template)]


def parse_path(raw: str) -> list[str | int]:
    if not PATH.match(raw):
        raise TemplateError(f"`{{{{{raw}}}}}` is not a reference like `{{{{item.field}}}}`")
    steps: list[str | int] = [name if name else int(index) for name, index in STEP.findall(raw)]
    if steps[0] not in NAMESPACES:
        raise TemplateError(f"`{{{{{raw}}}}}` must start with `item.` or `sample.`")
    return steps


def lookup(context: dict[str, Any], steps: list[str | int]) -> Any:
    value: Any = context
    for step in steps:
        found = (
            step < len(value)
            if isinstance(step, int) and isinstance(value, list)
            else isinstance(step, str) and isinstance(value, dict) and step in value
        )
        if not found:
            raise TemplateError(f"`{_show(steps)}` is not in this item or sample")
        value = value[step]
    return value


def render(template: str, context: dict[str, Any]) -> str:
    """Substitute every reference; strings as they are, anything else as JSON."""

    def one(match: re.Match[str]) -> str:
        value = lookup(context, parse_path(match.group(1)))
        return value if isinstance(value, str) else json.dumps(value)

    return REFERENCE.sub(one, template)


def _show(steps: list[str | int]) -> str:
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out
