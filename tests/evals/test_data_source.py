"""A run's ``data_source``, read strictly and by its type (evals/service.py)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.core.errors import InvalidRequestError
from corral.evals.service import parse_data_source

SOURCE: dict[str, Any] = {
    "type": "completions",
    "model": "m",
    "source": {"type": "file_id", "id": "file-1"},
    "input_messages": {
        "type": "template",
        "template": [
            {"role": "system", "content": "Answer."},
            {
                "type": "message",
                "role": "user",
                "content": {"type": "input_text", "text": "{{item.q}}"},
            },
        ],
    },
    "sampling_params": {"max_completion_tokens": 4, "temperature": 0},
}


def test_a_template_with_text_parts_is_taken() -> None:
    source = parse_data_source(SOURCE)
    assert [m.text() for m in source.input_messages.template] == ["Answer.", "{{item.q}}"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"type": ["completions"]}, "data_source.type", "invalid_type"),  # was a 500
        (
            {"sampling_params": {"max_completion_tokens": "4"}},
            "data_source.sampling_params.max_completion_tokens",
            "invalid_type",
        ),
        ({"source": {"type": "file_id"}}, "data_source.source.id", "missing_required_parameter"),
    ],
)
def test_a_bad_data_source_names_its_field(change: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_data_source({**SOURCE, **change})
    assert (err.value.param, err.value.code) == (param, code)
