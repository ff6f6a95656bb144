"""Chat JSONL validation: every problem names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.tuning.data import DataError, read_examples

OK = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{nope", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"messages": []}', "missing `messages`"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "unknown role `bot` in messages[0]"),
        ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}', "no `content`"),
        (
            '{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
            "only text content parts",
        ),
        (json.dumps({**OK, "extra": 1}), "unknown key `extra`"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, json.dumps(OK), "", line)
    with pytest.raises(DataError) as err:
        read_examples(path, 100)
    assert err.value.line == 3
    assert problem in str(err.value)
    assert str(err.value).startswith("line 3: ")


def test_good_file(tmp_path: Path) -> None:
    tools_ok = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "1"},
            {"role": "assistant", "content": "42"},
        ],
        "tools": [],
    }
    examples = read_examples(write(tmp_path, json.dumps(OK), json.dumps(tools_ok)), 100)
    assert len(examples) == 2
    assert examples[1][0] == {"role": "system", "content": "be brief"}


def test_limits(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no examples"):
        read_examples(write(tmp_path, "", ""), 100)
    with pytest.raises(DataError, match="line 3: more than 2 examples"):
        read_examples(write(tmp_path, *[json.dumps(OK)] * 3), 2)
