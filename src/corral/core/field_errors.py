"""A wire model's validation errors (pydantic's) in each dialect's own words.

OpenAI words each kind of failure its own way and gives it a code: "Missing required
parameter: 'messages'." (``missing_required_parameter``), "Invalid 'temperature': decimal
above maximum value. Expected a value <= 2, but got 3.0 instead."
(``decimal_above_max_value``), "Invalid type for 'max_tokens': expected an integer, but got
a string instead." (``invalid_type``). Anthropic's API answers with pydantic's own message
after the field's dotted location, tags of its unions included: "tools.0.custom.name:
String should match pattern '^[a-zA-Z0-9_-]{1,128}$'". Both wordings were read off the
vendors' answers quoted in public issue threads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from corral.core.errors import InvalidRequestError

Error = Mapping[str, Any]
Loc = tuple[int | str, ...]
NO_DATA: Any = object()  # the request's data is not known: a location is read as it is


class FieldError(InvalidRequestError):
    """An invalid field: ``message`` in OpenAI's words, ``anthropic_message`` in
    Anthropic's (the Messages API answers with that one)."""

    def __init__(self, message: str, *, param: str | None, code: str | None, anthropic: str):
        super().__init__(message, param=param, code=code)
        self.anthropic_message = anthropic


def param_of(loc: Loc) -> str | None:
    """Pydantic's error location as OpenAI writes a param: ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("body",):
            out += f".{part}" if out else str(part)
    return out or None


# What a field expected, by pydantic's error type, in OpenAI's words for a wrong type.
EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}

# A JSON value's type in OpenAI's words (bool before int: a bool is an int in Python).
JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a decimal number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_type(value: Any) -> str:
    for kind, words in JSON_TYPES:
        if isinstance(value, kind):
            return words
    return "null" if value is None else type(value).__name__


# The parts pydantic adds to a location inside a union of types: a member's type (``str``,
# ``list[TextPart]``, ``literal[...]``, ``constrained-str``) or model class name; never a
# field of the request.
TYPE_TAG = re.compile(
    r"^(str|int|float|bool|none|[a-z-]+\[.*\]|function-.*|constrained-\w+|[A-Z]\w*)$"
)


def field_loc(error: Error, data: Any = NO_DATA) -> Loc:
    """The error's location as the request has it: without the type tags of unions, and
    without the tags of discriminated unions (``messages.0.user.content``: the request's
    message has no ``user`` level), found by walking the request's data."""
    loc = tuple(error.get("loc", ()))
    out: list[int | str] = []
    here, tagged = data, False
    for index, part in enumerate(loc):
        after = loc[index + 1] if index + 1 < len(loc) else None
        if _is_tag(part, after, here, tagged):
            tagged = True  # one tag a level: what follows it is the member's field
            continue
        out.append(part)
        here, tagged = _child(here, part), False
    return tuple(out)


def _is_tag(part: int | str, after: int | str | None, here: Any, tagged: bool) -> bool:
    if not isinstance(part, str):
        return False
    if not isinstance(here, dict):  # the data is not known here: pydantic's tag forms
        return bool(TYPE_TAG.match(part)) or part == after
    if part not in here:
        return after is not None  # a level the request does not have (a missing field is last)
    # A member's tag that is also one of its fields (`{"type": "template", "template": …}`)
    # is followed by a field of the same object, not of the one it names.
    return not tagged and isinstance(after, str) and after in here


def _child(here: Any, part: int | str) -> Any:
    if isinstance(here, dict) and isinstance(part, str) and part in here:
        return here[part]
    if isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
        return here[part]
    return NO_DATA


def invalid_field(
    errors: Sequence[Error], data: Any = NO_DATA, prefix: Loc = (), member: str | None = None
) -> FieldError:
    """The first of a wire model's validation errors, said in both dialects. ``data``:
    what was validated (its tags are then left out of the param); ``prefix``: where in the
    request it sits (a tool validated on its own: ``("tools", 0)``); ``member``: the union
    member Anthropic names after it (``tools.0.custom.name``)."""
    outer = field_loc(errors[0], data)
    # A union member that matched the outer type and failed inside says more.
    inner = [e for e in errors if field_loc(e, data)[: len(outer)] == outer]
    first = max(inner, key=lambda e: len(field_loc(e, data)))
    loc = field_loc(first, data)
    alike = [e for e in errors if field_loc(e, data) == loc]
    message, code, param = _openai(first, alike, prefix + loc)
    anthropic = _anthropic(errors[0], prefix + ((member,) if member else ()))
    return FieldError(message, param=param, code=code, anthropic=anthropic)


def _anthropic(error: Error, prefix: Loc) -> str:
    loc = [p for p in (*prefix, *error.get("loc", ())) if not _is_type_tag(p)]
    where = ".".join(str(p) for p in loc if p != "body")
    message = str(error.get("msg", "Invalid request"))
    if error.get("type") == "model_type":  # pydantic names corral's class here
        message = "Input should be a valid dictionary"
    return f"{where}: {message}" if where else message


def _is_type_tag(part: int | str) -> bool:
    return isinstance(part, str) and bool(TYPE_TAG.match(part))


Said = tuple[str, str | None, str | None]  # message, code, param


def _openai(first: Error, alike: Sequence[Error], loc: Loc) -> Said:
    param = param_of(loc)
    where = f"'{param}'" if param else "the request body"
    expected = [EXPECTED.get(str(e.get("type"))) for e in alike]
    if None not in expected:
        wanted = " or ".join(dict.fromkeys(w for w in expected if w))
        got = _json_type(first.get("input"))
        message = f"Invalid type for {where}: expected {wanted}, but got {got} instead."
        return message, "invalid_type", param
    words = WORDS.get(str(first.get("type")))
    if words is not None:
        return words(first, param, f"Invalid {where}")
    return f"Invalid value for {where}: {first.get('msg', 'Invalid request')}", None, param


def _missing(error: Error, param: str | None, _: str) -> Said:
    discriminator = (error.get("ctx") or {}).get("discriminator")
    if discriminator is not None:  # an item without the field that says its kind
        param = _join(param, str(discriminator).strip("'"))
    return f"Missing required parameter: '{param}'.", "missing_required_parameter", param


def _tag(error: Error, param: str | None, _: str) -> Said:
    ctx = error.get("ctx") or {}
    param = _join(param, str(ctx.get("discriminator", "type")).strip("'"))
    listed = _listed(str(ctx.get("expected_tags", "")))
    return f"Invalid value: {_shown(ctx.get('tag'))}. Supported values are: {listed}.", _V, param


def _literal(error: Error, param: str | None, _: str) -> Said:
    listed = _listed(str((error.get("ctx") or {}).get("expected", "")))
    got = _shown(error.get("input"))
    return f"Invalid value: {got}. Supported values are: {listed}.", _V, param


def _pattern(error: Error, param: str | None, invalid: str) -> Said:
    pattern = (error.get("ctx") or {}).get("pattern")
    why = f"string does not match pattern. Expected a string that matches the pattern '{pattern}'."
    return f"{invalid}: {why}", _V, param


def _string_long(error: Error, param: str | None, invalid: str) -> Said:
    limit, got = (error.get("ctx") or {}).get("max_length"), len(str(error.get("input")))
    why = f"string too long. Expected a string with maximum length {limit}"
    return f"{invalid}: {why}, but got a string with length {got} instead.", _LONG, param


def _string_short(error: Error, param: str | None, invalid: str) -> Said:
    limit, got = (error.get("ctx") or {}).get("min_length"), len(str(error.get("input")))
    if got == 0:
        why = f"empty string. Expected a string with minimum length {limit}"
        return f"{invalid}: {why}, but got an empty string instead.", "empty_string", param
    why = f"string too short. Expected a string with minimum length {limit}"
    return f"{invalid}: {why}, but got a string with length {got} instead.", _SHORT, param


def _array_long(error: Error, param: str | None, invalid: str) -> Said:
    ctx = error.get("ctx") or {}
    if ctx.get("field_type") != "List":
        return _fallback(error, param, invalid)
    limit, got = ctx.get("max_length"), ctx.get("actual_length")
    why = f"array too long. Expected an array with maximum length {limit}"
    return f"{invalid}: {why}, but got an array with length {got} instead.", _ALONG, param


def _array_short(error: Error, param: str | None, invalid: str) -> Said:
    ctx = error.get("ctx") or {}
    if ctx.get("field_type") != "List":
        return _fallback(error, param, invalid)
    limit, got = ctx.get("min_length"), ctx.get("actual_length")
    if got == 0:
        why = f"empty array. Expected an array with minimum length {limit}"
        return f"{invalid}: {why}, but got an empty array instead.", "empty_array", param
    why = f"array too short. Expected an array with minimum length {limit}"
    return f"{invalid}: {why}, but got an array with length {got} instead.", _ASHORT, param


def _bound(sign: str, above: bool) -> Callable[[Error, str | None, str], Said]:
    """A number out of its range: "decimal" where the field is a number (its bound is a
    float), "integer" where it is an integer, as OpenAI words it."""

    def said(error: Error, param: str | None, invalid: str) -> Said:
        bound = next(iter((error.get("ctx") or {}).values()), None)
        decimal = isinstance(bound, float)
        kind = "decimal" if decimal else "integer"
        side = "above maximum" if above else "below minimum"
        got = error.get("input")
        shown = repr(float(got)) if decimal and isinstance(got, int | float) else str(got)
        why = f"{kind} {side} value. Expected a value {sign} {_number(bound)}"
        code = f"{kind}_{'above_max' if above else 'below_min'}_value"
        return f"{invalid}: {why}, but got {shown} instead.", code, param

    return said


def _fallback(error: Error, param: str | None, _: str) -> Said:
    where = f"'{param}'" if param else "the request body"
    return f"Invalid value for {where}: {error.get('msg', 'Invalid request')}", None, param


_V, _LONG, _SHORT = "invalid_value", "string_above_max_length", "string_below_min_length"
_ALONG, _ASHORT = "array_above_max_length", "array_below_min_length"

WORDS: dict[str, Callable[[Error, str | None, str], Said]] = {
    "missing": _missing,
    "union_tag_not_found": _missing,
    "union_tag_invalid": _tag,
    "literal_error": _literal,
    "enum": _literal,
    "string_pattern_mismatch": _pattern,
    "string_too_long": _string_long,
    "string_too_short": _string_short,
    "too_long": _array_long,
    "too_short": _array_short,
    "less_than_equal": _bound("<=", above=True),
    "less_than": _bound("<", above=True),
    "greater_than_equal": _bound(">=", above=False),
    "greater_than": _bound(">", above=False),
}


def _join(param: str | None, name: str) -> str:
    return f"{param}.{name}" if param else name


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def _listed(expected: str) -> str:
    """Pydantic's "'a', 'b' or 'c'" as OpenAI lists values: "'a', 'b', and 'c'"."""
    items = [i for i in re.split(r", | or ", expected) if i]
    if len(items) < 3:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def optional_string(value: Any, param: str) -> str | None:
    """A field the services read by hand (an item's ``type`` or ``role``) is a string
    where it is given: anything else is a 400 in both dialects' words, never a lookup
    of a list or an object in a set."""
    if value is None or isinstance(value, str):
        return value
    dotted = re.sub(r"\[(\d+)\]", r".\1", param)
    raise FieldError(
        f"Invalid type for '{param}': expected a string, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
        anthropic=f"{dotted}: Input should be a valid string",
    )
