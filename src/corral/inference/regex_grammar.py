"""A regex grammar rewritten so that every engine enforces it on a JSON string.

A custom tool's ``regex`` grammar is enforced as the JSON-schema ``pattern`` of the
string its input is sent in. Engines read that pattern differently: llama.cpp's
converter turns it into GBNF over the string's *raw* JSON text and knows only a small
regex subset (no ``(?:``, no ``\\d``, and a ``.`` or ``[^…]`` there could write an
unescaped quote, breaking the JSON), while llguidance and xgrammar (vLLM) apply it to
the decoded string. So the pattern is parsed here (Python's regex parser) and written
again in the subset every one of them reads the same way:

- only groups ``( )``, alternation ``|``, character classes ``[…]`` with ``\\xNN`` /
  ``\\uNNNN`` escapes, and the quantifiers ``* + ? {m,n}``, anchored ``^…$``;
- never a character a JSON string must escape (``"``, ``\\``, control characters): a
  class or ``.`` loses them (the input still matches the regex), a literal one is
  refused. Raw and decoded text are then the same, so every engine means one thing.

What cannot be enforced that way (lookarounds, backreferences, inner anchors, inline
flags) is refused, never passed on to be ignored.
"""

from __future__ import annotations

import re

# Python's own regex parser: its tree is what is rewritten. (Private, but stable in 3.11+.)
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MAX_CHAR = 0xFFFF  # classes stop at the BMP: \U escapes are not read by every engine
MAX_COUNT = 1000  # a {m,n} bound past this would unroll into a huge grammar
Range = tuple[int, int]

DIGITS: list[Range] = [(0x30, 0x39)]
WORD: list[Range] = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE: list[Range] = [(0x09, 0x0D), (0x20, 0x20)]
CATEGORIES: dict[Any, tuple[list[Range], bool]] = {
    sre.CATEGORY_DIGIT: (DIGITS, False),
    sre.CATEGORY_NOT_DIGIT: (DIGITS, True),
    sre.CATEGORY_WORD: (WORD, False),
    sre.CATEGORY_NOT_WORD: (WORD, True),
    sre.CATEGORY_SPACE: (SPACE, False),
    sre.CATEGORY_NOT_SPACE: (SPACE, True),
}
# What a JSON string holds unescaped: no control characters, quote or backslash.
SAFE: list[Range] = [(0x20, 0x21), (0x23, 0x5B), (0x5D, MAX_CHAR)]
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))


class Unsupported(ValueError):
    """The regex cannot be enforced as written; the message says why."""


def json_safe_pattern(definition: str) -> str:
    """``definition`` as an anchored pattern of the common subset (raises ``re.error``
    for a regex that does not parse, ``Unsupported`` for one that cannot be enforced)."""
    parsed = sre_parse.parse(definition)
    if parsed.state.flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE):
        raise Unsupported("inline flags such as (?i) are not supported")
    items = list(parsed)
    if items and items[0] == (sre.AT, sre.AT_BEGINNING):
        items = items[1:]
    if items and items[-1] == (sre.AT, sre.AT_END):
        items = items[:-1]
    return "^" + _sequence(items) + "$"


def _sequence(items: Any) -> str:
    return "".join(_item(op, arg) for op, arg in items)


def _item(op: Any, arg: Any) -> str:
    if op == sre.LITERAL:
        if arg > MAX_CHAR:
            raise Unsupported("characters beyond U+FFFF are not supported")
        if not _inside([(arg, arg)], SAFE):
            raise Unsupported(
                f"the literal {chr(arg)!r} would need escaping in JSON text; a quote, "
                "a backslash or a control character cannot be required"
            )
        return _class([(arg, arg)])
    if op in (sre.NOT_LITERAL, sre.ANY, sre.IN):
        return _class(_safe(_ranges(op, arg)))
    if op in REPEATS:
        low, high, sub = arg
        return _group(sub) + _quantifier(low, high)
    if op == sre.SUBPATTERN:
        _, add_flags, del_flags, sub = arg
        if add_flags or del_flags:
            raise Unsupported("inline flags such as (?i:…) are not supported")
        return "(" + _sequence(sub) + ")"
    if op == sre.BRANCH:
        return "(" + "|".join(_sequence(branch) for branch in arg[1]) + ")"
    name = "anchors inside the pattern" if op == sre.AT else f"`{str(op).lower()}`"
    raise Unsupported(
        f"{name} cannot be enforced (lookarounds, backreferences and "
        "inner anchors are not supported)"
    )


def _group(sub: Any) -> str:
    items = list(sub)
    if len(items) == 1 and items[0][0] in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
        return _item(*items[0])  # a single class needs no group
    return "(" + _sequence(items) + ")"


def _quantifier(low: int, high: int) -> str:
    unbounded = high == sre.MAXREPEAT
    if max(low, 0 if unbounded else high) > MAX_COUNT:
        raise Unsupported(f"repetition counts above {MAX_COUNT} are not supported")
    if unbounded:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _ranges(op: Any, arg: Any) -> list[Range]:
    if op == sre.NOT_LITERAL:
        return _complement([(arg, arg)])
    if op == sre.ANY:
        return _complement([(0x0A, 0x0A)])
    negate, ranges = False, []
    for kind, value in arg:
        if kind == sre.NEGATE:
            negate = True
        elif kind == sre.LITERAL:
            ranges.append((value, value))
        elif kind == sre.RANGE:
            ranges.append(value)
        elif kind == sre.CATEGORY and value in CATEGORIES:
            found, negated = CATEGORIES[value]
            ranges += _complement(found) if negated else found
        else:
            raise Unsupported(f"`{str(kind).lower()}` in a character class is not supported")
    return _complement(ranges) if negate else _merge(ranges)


def _merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: list[Range]) -> list[Range]:
    result, start = [], 0
    for low, high in _merge(ranges):
        if low > start:
            result.append((start, low - 1))
        start = max(start, high + 1)
    if start <= MAX_CHAR:
        result.append((start, MAX_CHAR))
    return result


def _safe(ranges: list[Range]) -> list[Range]:
    """The ranges less what a JSON string must escape."""
    kept = []
    for low, high in ranges:
        for safe_low, safe_high in SAFE:
            if max(low, safe_low) <= min(high, safe_high):
                kept.append((max(low, safe_low), min(high, safe_high)))
    if not kept:
        raise Unsupported("a character class matches only characters JSON must escape")
    return kept


def _inside(ranges: list[Range], within: list[Range]) -> bool:
    return all(any(a <= low and high <= b for a, b in within) for low, high in ranges)


def _class(ranges: list[Range]) -> str:
    parts = [_char(low) if low == high else f"{_char(low)}-{_char(high)}" for low, high in ranges]
    return "[" + "".join(parts) + "]"


def _char(code: int) -> str:
    return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}"
