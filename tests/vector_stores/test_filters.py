from __future__ import annotations

from typing import Any

import pytest

from corral.core.errors import InvalidRequestError
from corral.protocol.vector_stores import ComparisonFilter, CompoundFilter
from corral.vector_stores.filters import check_filter, matches

ATTRS = {"kind": "policy", "year": 2024, "draft": False, "score": 0.5}


def cmp(op: str, key: str, value: Any) -> ComparisonFilter:
    return ComparisonFilter.model_validate({"type": op, "key": key, "value": value})


@pytest.mark.parametrize(
    ("op", "key", "value", "expected"),
    [
        ("eq", "kind", "policy", True),
        ("eq", "year", 2024.0, True),  # numbers compare as numbers
        ("eq", "draft", 0, False),  # a boolean is not a number
        ("eq", "draft", False, True),
        ("ne", "kind", "org", True),
        ("ne", "missing", "x", True),  # a missing attribute equals nothing
        ("eq", "missing", "x", False),
        ("gt", "year", 2023, True),
        ("gte", "year", 2024, True),
        ("lt", "score", 0.5, False),
        ("lte", "score", 0.5, True),
        ("gt", "kind", 3, False),  # no order between a string and a number
        ("gt", "kind", "a", True),  # strings order as strings
        ("in", "kind", ["org", "policy"], True),
        ("in", "year", [2023, 2025], False),
        ("nin", "kind", ["org"], True),
        ("nin", "missing", ["org"], True),
    ],
)
def test_comparisons(op: str, key: str, value: Any, expected: bool) -> None:
    assert matches(cmp(op, key, value), ATTRS) is expected


def test_compound_filters_nest() -> None:
    f = CompoundFilter.model_validate(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "kind", "value": "org"},
                {
                    "type": "and",
                    "filters": [
                        {"type": "gte", "key": "year", "value": 2024},
                        {"type": "eq", "key": "draft", "value": False},
                    ],
                },
            ],
        }
    )
    assert matches(f, ATTRS)
    assert not matches(f, {**ATTRS, "draft": True})
    assert not matches(f, None)


def test_values_must_fit_the_operator() -> None:
    with pytest.raises(InvalidRequestError) as e:
        check_filter(cmp("in", "k", "x"))
    assert e.value.param == "filters.value"
    nested = CompoundFilter.model_validate(
        {"type": "and", "filters": [{"type": "gt", "key": "k", "value": [1]}]}
    )
    with pytest.raises(InvalidRequestError) as e:
        check_filter(nested)
    assert e.value.param == "filters.filters[0].value"
