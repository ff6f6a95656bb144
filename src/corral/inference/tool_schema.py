"""A tool's parameters must be a JSON Schema, as both vendors check them: an invalid one
is refused by name before anything is built from it (the tools prompt, the grammar that
holds a call to its schema). The draft a schema names in ``$schema`` is the one it is
checked against; one that names none, against draft 2020-12 or draft 7. OpenAI says
"Invalid schema for function 'f': None is not of type 'array'."
(``invalid_function_parameters``), in the words of Python's ``jsonschema``; Anthropic
"tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft
2020-12 (…)"."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import jsonschema
import orjson
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from corral.core.field_errors import FieldError, dotted

INVALID_FOR_ANTHROPIC = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 "
    "(https://json-schema.org/draft/2020-12). Learn more about tool use at "
    "https://docs.anthropic.com/en/docs/tool-use."
)


def schema_error(schema: Any) -> str | None:
    """What makes ``schema`` no JSON Schema, or None. Agents send the same tools every
    turn: a schema is checked once, then remembered by its text's digest (a few bytes a
    schema, however large)."""
    try:
        text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits (an MCP server's listing): no cache
        return _check(schema)
    key = hashlib.sha256(text).digest()
    if key not in _KNOWN:
        _KNOWN[key] = _check(schema)
        while len(_KNOWN) > REMEMBER:
            _KNOWN.popitem(last=False)
    _KNOWN.move_to_end(key)
    return _KNOWN[key]


REMEMBER = 4096
_KNOWN: OrderedDict[bytes, str | None] = OrderedDict()


def _check(schema: Any) -> str | None:
    declared: type[Validator] = jsonschema.Draft202012Validator
    if isinstance(schema, dict) and isinstance(schema.get("$schema"), str):
        declared = validator_for(schema, default=declared)
    why = _why(declared, schema)
    if why is None or not isinstance(schema, dict) or "$schema" in schema:
        return why  # a `$schema` that is no string is refused by the 2020-12 metaschema
    # No draft named: draft 7's forms (an array of `items`, `definitions`), which many
    # generators still write and the engines' grammars read, are taken too.
    return None if _why(jsonschema.Draft7Validator, schema) is None else why


def _why(validator: type[Validator], schema: Any) -> str | None:
    """The metaschema's verdict; a ``pattern`` is not compiled here (it is ECMA-262's,
    `\\p{L}` and named groups included, which Python's ``re`` would refuse)."""
    try:
        # jsonschema's protocol stub lacks the keyword its validators take
        validator.check_schema(schema, format_checker=None)  # type: ignore[call-arg]
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


def check_parameters(name: str, schema: Any, param: str, anthropic_at: str = "") -> None:
    """A function tool's parameters, said in both dialects where they are invalid;
    ``anthropic_at``: where Anthropic locates them (``tools.0.custom.input_schema``)."""
    why = schema_error(schema)
    if why is not None:
        raise FieldError(
            f"Invalid schema for function '{name}': {why}.",
            param=param,
            code="invalid_function_parameters",
            anthropic=f"{anthropic_at or dotted(param)}: {INVALID_FOR_ANTHROPIC}",
        )
