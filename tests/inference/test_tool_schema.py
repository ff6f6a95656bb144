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


def test_a_schema_is_read_in_its_own_draft() -> None:
    """Draft 7's array of ``items`` (tuples) is no 2020-12 schema; a schema that names
    draft 7, or names none, may use it. One that names 2020-12 may not."""
    pair = {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
    assert schema_error(pair) is None
    assert schema_error({"$schema": "http://json-schema.org/draft-07/schema#", **pair}) is None
    named = {"$schema": "https://json-schema.org/draft/2020-12/schema", **pair}
    assert schema_error(named) is not None


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
