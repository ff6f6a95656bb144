"""A tool's parameters checked as a JSON Schema (draft 2020-12), once per schema text."""

from __future__ import annotations

import pytest

from corral.core.errors import InvalidRequestError
from corral.inference import tool_schema
from corral.inference.tool_schema import check_parameters, schema_error


def test_a_schema_is_valid_or_says_why() -> None:
    assert schema_error({"type": "object", "properties": {"city": {"type": "string"}}}) is None
    assert schema_error({}) is None  # any arguments
    assert schema_error({"type": "object", "properties": 7}) == "7 is not of type 'object'"
    assert schema_error({"required": "city"}) == "'city' is not of type 'array'"


def test_the_same_schema_is_checked_once() -> None:
    tool_schema._checked.cache_clear()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    for _ in range(3):
        assert schema_error(dict(reversed(list(schema.items())))) is None  # key order aside
    assert tool_schema._checked.cache_info().misses == 1


def test_check_parameters_names_the_function_and_the_param() -> None:
    with pytest.raises(InvalidRequestError) as err:
        check_parameters("lookup", {"type": "objekt"}, "tools[2].parameters")
    assert err.value.param == "tools[2].parameters"
    assert err.value.code == "invalid_function_parameters"
    assert err.value.message.startswith("Invalid schema for function 'lookup': ")
