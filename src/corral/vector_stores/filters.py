"""Attribute filters (OpenAI's comparison and compound filters) over files' attributes.

They are evaluated on the files of a store, not on its chunks: a store has at most
``max_files_per_store`` files, and the search then keeps the chunks of the files that
passed."""

from __future__ import annotations

from typing import Any

from corral.core.errors import InvalidRequestError
from corral.protocol.vector_stores import ComparisonFilter, CompoundFilter

Filter = ComparisonFilter | CompoundFilter
LISTS = ("in", "nin")


def check_filter(f: Filter, param: str = "filters") -> None:
    """Refuse a filter whose value does not fit its operator, before any work."""
    if isinstance(f, CompoundFilter):
        if not f.filters:
            raise InvalidRequestError(
                f"An `{f.type}` filter needs at least one filter.", param=f"{param}.filters"
            )
        for i, inner in enumerate(f.filters):
            check_filter(inner, f"{param}.filters[{i}]")
        return
    if (f.type in LISTS) != isinstance(f.value, list):
        want = "a list" if f.type in LISTS else "a string, number or boolean"
        raise InvalidRequestError(
            f"The `{f.type}` filter on `{f.key}` needs {want} as its value.",
            param=f"{param}.value",
        )


def matches(f: Filter, attributes: dict[str, Any] | None) -> bool:
    if isinstance(f, CompoundFilter):
        results = (matches(inner, attributes) for inner in f.filters)
        return all(results) if f.type == "and" else any(results)
    attrs = attributes or {}
    if f.key not in attrs:
        return f.type in ("ne", "nin")  # a missing attribute is unequal to every value
    return _compare(f.type, attrs[f.key], f.value)


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "eq":
        return bool(_same_kind(have, want) and have == want)
    if op == "ne":
        return not (_same_kind(have, want) and have == want)
    if op == "in":
        return any(_same_kind(have, w) and have == w for w in want)
    if op == "nin":
        return not any(_same_kind(have, w) and have == w for w in want)
    if not _same_kind(have, want) or isinstance(have, bool):
        return False  # an order between a string and a number (or booleans) is no answer
    if op == "gt":
        return bool(have > want)
    if op == "gte":
        return bool(have >= want)
    if op == "lt":
        return bool(have < want)
    return bool(have <= want)


def _same_kind(a: Any, b: Any) -> bool:
    """Numbers compare with numbers (1 == 1.0), strings with strings, booleans with
    booleans: ``True == 1`` is no match."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str)
    return True
