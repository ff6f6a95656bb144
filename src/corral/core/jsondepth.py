"""JSON nesting bounded before a parser sees it.

orjson stops at 1,024 levels, the standard library's ``json`` at about 1,000 with a
``RecursionError``, and what corral does with a parsed value (encoding a tool's schema,
turning it into a grammar, validating it) recurses again. Real requests nest a few
levels (OpenAI's structured outputs allow 10), so anything past ``MAX_DEPTH`` is refused
at the door, by a scan that costs less than the parse it saves.
"""

from __future__ import annotations

import re

MAX_DEPTH = 64

# A JSON string, escapes included (unrolled so the regex engine does not backtrack).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def nested_deeper(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than ``limit`` deep.

    Strings are cut out, then every bracket but the brackets; each pass then removes the
    innermost pairs, so the passes needed are the depth (text that is not JSON stops
    early, and the parser says what is wrong with it)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets:
            return False
        brackets = inner
    return bool(brackets) and brackets.replace(b"[]", b"").replace(b"{}", b"") != brackets
