"""Predicted Outputs (``prediction``) with the openai SDK on the embedded model."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from corral.inference.prediction import kept_text
from tests.conftest import MODEL
from tests.e2e.conftest import SYSTEM

pytestmark = pytest.mark.slow

CODE = "def add(a, b):\n    return a + b\n"
EDIT = [SYSTEM, {"role": "user", "content": f"Copy this code exactly:\n{CODE}"}]


def _edit(client: openai.OpenAI, prediction: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL,
        messages=EDIT,  # type: ignore[arg-type]
        max_tokens=48,
        temperature=0,
        seed=3,
        prediction={"type": "content", "content": prediction},
        **extra,
    )


def test_a_matching_prediction_is_accepted(client: openai.OpenAI) -> None:
    for _ in range(2):  # the second run sees the prompt cache as the predicted run will
        first = client.chat.completions.create(
            model=MODEL,
            messages=EDIT,
            max_tokens=48,
            temperature=0,
            seed=3,  # type: ignore[arg-type]
        )
    prediction = first.choices[0].message.content or ""
    assert first.usage is not None and first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.accepted_prediction_tokens == 0
    r = _edit(client, prediction)
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    details = r.usage.completion_tokens_details
    accepted, rejected = details.accepted_prediction_tokens, details.rejected_prediction_tokens
    assert accepted is not None and rejected is not None and accepted > 0
    # Greedy output repeats itself unless a near-tie flipped (tests/engines/test_speculative).
    if kept_text(prediction, r.choices[0].message.content or "") == prediction:
        assert rejected == 0
    else:
        assert rejected > 0
    assert r.usage.completion_tokens >= rejected
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_a_prediction_the_output_contains_is_accepted_whole(client: openai.OpenAI) -> None:
    prediction = "def add(a, b):"
    r = _edit(client, prediction)
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    details = r.usage.completion_tokens_details
    if prediction in (r.choices[0].message.content or ""):
        assert details.rejected_prediction_tokens == 0
        assert details.accepted_prediction_tokens and details.accepted_prediction_tokens >= 5
    else:
        assert details.rejected_prediction_tokens


def test_a_wrong_prediction_is_rejected_and_billed_as_output(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=MODEL,
        messages=EDIT,
        max_tokens=48,
        temperature=0,
        seed=3,  # type: ignore[arg-type]
    )
    wrong = "zebra quantum umbrella 48213 marmalade " * 4
    r = _edit(client, wrong)
    assert r.usage is not None and plain.usage is not None
    details = r.usage.completion_tokens_details
    assert details is not None and details.rejected_prediction_tokens is not None
    assert details.accepted_prediction_tokens is not None
    assert details.rejected_prediction_tokens > 3 * details.accepted_prediction_tokens
    generated = r.usage.completion_tokens - details.rejected_prediction_tokens
    assert 0 < generated <= 48


def test_a_streamed_prediction_reports_its_tokens(client: openai.OpenAI) -> None:
    stream = _edit(client, CODE, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    details = usage.completion_tokens_details
    assert details.accepted_prediction_tokens is not None
    assert details.rejected_prediction_tokens is not None
    assert details.accepted_prediction_tokens + details.rejected_prediction_tokens > 5


@pytest.mark.parametrize(
    ("prediction", "extra", "param"),
    [
        ({"type": "image", "content": "x"}, {}, "prediction.type"),
        ({"type": "content"}, {}, "prediction.content"),
        ({"type": "content", "content": 5}, {}, "prediction.content"),
        ({"type": "content", "content": "x"}, {"n": 2}, "n"),
        ({"type": "content", "content": "x"}, {"logprobs": True}, "logprobs"),
        ({"type": "content", "content": "x" * 300_000}, {}, "prediction"),
    ],
)
def test_bad_predictions_are_refused(
    client: openai.OpenAI, prediction: Any, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=EDIT,  # type: ignore[arg-type]
            max_tokens=8,
            prediction=prediction,
            **extra,
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert str(body.get("param", "")).startswith(param), body
