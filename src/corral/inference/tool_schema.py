"""A tool's parameters must be a JSON Schema (draft 2020-12), as both vendors check them:
an invalid one is refused by name before anything is built from it (the tools prompt, the
grammar that holds a call to its schema). OpenAI says "Invalid schema for function 'f':
None is not of type 'array'." (``invalid_function_parameters``), in the words of Python's
``jsonschema``; Anthropic "tools.0.custom.input_schema: JSON schema is invalid. It must
match JSON Schema draft 2020-12 (…)"."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import orjson

from corral.core.errors import InvalidRequestError

INVALID_FOR_ANTHROPIC = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 "
    "(https://json-schema.org/draft/2020-12). Learn more about tool use at "
    "https://docs.anthropic.com/en/docs/tool-use."
)


def schema_error(schema: Any) -> str | None:
    """What makes ``schema`` no JSON Schema, or None. Agents send the same tools every
    turn: a schema is checked once, then remembered by its text."""
    return _checked(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=2048)
def _checked(text: bytes) -> str | None:
    try:
        jsonschema.Draft202012Validator.check_schema(orjson.loads(text))
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


def check_parameters(name: str, schema: Any, param: str) -> None:
    """A function tool's ``parameters``, in OpenAI's words where they are invalid."""
    why = schema_error(schema)
    if why is not None:
        raise InvalidRequestError(
            f"Invalid schema for function '{name}': {why}.",
            param=param,
            code="invalid_function_parameters",
        )
