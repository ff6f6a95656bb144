"""A tool's parameters checked as a JSON Schema, once per schema text."""

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


def test_the_same_schema_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[object] = []
    check = tool_schema._check
    monkeypatch.setattr(tool_schema, "_check", lambda s: checked.append(s) or check(s))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    for _ in range(3):
        assert schema_error(dict(reversed(list(schema.items())))) is None  # key order aside
    assert len(checked) == 1
    assert schema_error({"type": "integer", "maximum": 2**70}) is None  # past orjson: unkept


def test_what_a_client_may_write_is_a_schema_and_no_schema_is_a_500() -> None:
    """ECMA-262 patterns (zod's emoji, Unicode classes, named groups) are not compiled as
    Python regexes; a `$schema` that is no string is an answer, not an exception."""
    for pattern in (r"^\p{L}+$", r"\p{Extended_Pictographic}", r"(?<year>\d{4})", "[^]"):
        assert schema_error({"type": "string", "pattern": pattern}) is None, pattern
    assert schema_error({"$schema": 5, "type": "object"}) == "5 is not of type 'string'"
    assert schema_error({"$schema": {}, "type": "object"}) == "{} is not of type 'string'"


def test_check_parameters_names_the_function_and_the_param() -> None:
    with pytest.raises(InvalidRequestError) as err:
        check_parameters("lookup", {"type": "objekt"}, "tools[2].parameters")
    assert err.value.param == "tools[2].parameters"
    assert err.value.code == "invalid_function_parameters"
    assert err.value.message.startswith("Invalid schema for function 'lookup': ")
