"""A custom tool's regex grammar rewritten into the pattern subset every engine reads the
same way on a JSON string: the same language (less what JSON must escape), or refused."""

from __future__ import annotations

import json
import random
import re

import pytest

from corral.inference.regex_grammar import Unsupported, json_safe_pattern
from corral.inference.responses.tools import InputDecoder, partial_input


@pytest.mark.parametrize(
    ("definition", "matches", "misses"),
    [
        (r"[A-Z]{3}-\d{2}", ["ABC-12"], ["AB-12", "ABC-123", "abc-12"]),
        (r"^(yes|no)$", ["yes", "no"], ["yesno", ""]),
        (r"(ab|c.)*x?", ["", "abcdx", "cz"], ["a", 'c"', "c\\"]),
        (r"\d{1,3}(\.\d{1,3}){3}", ["10.0.0.1"], ["10.0.0"]),
        (r"[^a]\w+\s", ["bcd "], ["acd ", 'b"d ']),
    ],
)
def test_the_rewritten_pattern_means_the_same_less_json_escapes(
    definition: str, matches: list[str], misses: list[str]
) -> None:
    pattern = json_safe_pattern(definition)
    assert pattern.startswith("^") and pattern.endswith("$") and "(?" not in pattern
    assert "\\d" not in pattern and "." not in pattern.replace("\\x2E", "")
    for text in matches:
        assert re.fullmatch(pattern, text), text
    for text in misses:
        assert not re.fullmatch(pattern, text), text


@pytest.mark.parametrize(
    "definition", [r"(?=a)a", r"(a)\1", r"a^b", r"(?i)abc", r"say \"hi\"", "a\nb", r"a{5000}"]
)
def test_what_cannot_be_enforced_is_refused(definition: str) -> None:
    with pytest.raises(Unsupported):
        json_safe_pattern(definition)


def test_a_regex_that_does_not_parse_raises_re_error() -> None:
    with pytest.raises(re.error):
        json_safe_pattern("(unclosed")


def test_partial_input_decodes_what_is_certain() -> None:
    assert partial_input('{"inp') == ""
    assert partial_input('{"input": "a\\') == "a"  # the escape waits for its next piece
    assert partial_input('{"input": "a\\nb') == "a\nb"
    assert partial_input('{"input": "say \\"hi\\"", ') == 'say "hi"'


@pytest.mark.parametrize(
    "text",
    ['say "hi"\n\ttab \\ back', "emoji 😀, é, \u2028", '*** Begin Patch\n+ x = "a\\\\b"\n'],
)
def test_a_streamed_input_decodes_to_the_whole_however_cut(text: str) -> None:
    """Each prefix certain, the whole exact, for arguments cut at random places (the
    emoji's surrogate pair and the escapes cut too)."""
    arguments = json.dumps({"input": text})
    for seed in range(100):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(arguments)), rng.randint(1, 20)))
        pieces = [arguments[i:j] for i, j in zip([0, *cuts], [*cuts, len(arguments)], strict=True)]
        decoder, said = InputDecoder(), ""
        for piece in pieces:
            said += decoder.feed(piece)
            assert text.startswith(said)
        assert said == text == partial_input(arguments)
