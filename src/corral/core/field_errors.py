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
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from corral.core.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)
Error = Mapping[str, Any]
Loc = tuple[int | str, ...]
NO_DATA: Any = object()  # the request's data is not known: a location is read as it is


class FieldError(InvalidRequestError):
    """An invalid field: ``message`` in OpenAI's words, ``anthropic_message`` in
    Anthropic's (the Messages API answers with that one)."""

    def __init__(self, message: str, *, param: str | None, code: str | None, anthropic: str):
        super().__init__(message, param=param, code=code)
        self.anthropic_message = anthropic


def strictly(model: type[M], data: Any, prefix: Loc = (), member: str | None = None) -> M:
    """``data`` read as the vendors read a request, strictly ("5" for an integer is a
    400, not 5), its first error said in both dialects (``invalid_field``)."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise invalid_field(exc.errors(), data, prefix, member) from None


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
    located = [(field_loc(e, data), e) for e in errors]
    outer = located[0][0]
    # A union member that matched the outer type and failed inside says more.
    loc, first = max(
        (le for le in located if le[0][: len(outer)] == outer), key=lambda le: len(le[0])
    )
    alike = [e for at, e in located if at == loc]
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
    words = WORDS.get(str(first.get("type")), _fallback)
    return words(first, param, f"Invalid {where}")


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


def _length(noun: str, above: bool) -> Callable[[Error, str | None, str], Said]:
    """A string's or an array's length out of its bound, as OpenAI words it ("string too
    long. Expected a string with maximum length 64, but got a string with length 70
    instead."; "empty array. Expected an array with minimum length 1, but got an empty
    array instead.", code ``empty_array``)."""
    a = "an" if noun == "array" else "a"
    side, limit_key = ("long", "max_length") if above else ("short", "min_length")
    extreme = "maximum" if above else "minimum"
    code = f"{noun}_{'above_max' if above else 'below_min'}_length"

    def said(error: Error, param: str | None, invalid: str) -> Said:
        ctx = error.get("ctx") or {}
        if noun == "array" and ctx.get("field_type") != "List":  # an object's size
            return _fallback(error, param, invalid)
        limit = ctx.get(limit_key)
        got = ctx.get("actual_length") if noun == "array" else len(str(error.get("input")))
        expected = f"Expected {a} {noun} with {extreme} length {limit}"
        if not above and got == 0:
            why = f"empty {noun}. {expected}, but got an empty {noun} instead."
            return f"{invalid}: {why}", f"empty_{noun}", param
        why = f"{noun} too {side}. {expected}, but got {a} {noun} with length {got} instead."
        return f"{invalid}: {why}", code, param

    return said


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


_V = "invalid_value"

WORDS: dict[str, Callable[[Error, str | None, str], Said]] = {
    "missing": _missing,
    "union_tag_not_found": _missing,
    "union_tag_invalid": _tag,
    "literal_error": _literal,
    "enum": _literal,
    "string_pattern_mismatch": _pattern,
    "string_too_long": _length("string", above=True),
    "string_too_short": _length("string", above=False),
    "too_long": _length("array", above=True),
    "too_short": _length("array", above=False),
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
    raise FieldError(
        f"Invalid type for '{param}': expected a string, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
        anthropic=f"{dotted(param)}: Input should be a valid string",
    )


def dotted(param: str) -> str:
    """OpenAI's ``tools[0].name`` as Anthropic locates it: ``tools.0.name``."""
    return re.sub(r"\[(\d+)\]", r".\1", param)
