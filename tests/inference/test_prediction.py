"""Predicted Outputs' checks and accounting, without an engine."""

from __future__ import annotations

import asyncio

import pytest

from corral.core.errors import InvalidRequestError
from corral.inference.prediction import (
    check_prediction,
    kept_text,
    prediction_tokens,
    with_prediction,
)
from corral.protocol.chat import ChatCompletionRequest
from corral.protocol.common import Usage


def _req(**fields: object) -> ChatCompletionRequest:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "prediction": {"type": "content", "content": "a b c"},
        **fields,
    }
    return ChatCompletionRequest.model_validate(body)


async def _words(text: str) -> int:
    return len(text.split())


def test_kept_text_is_the_prediction_the_output_repeats() -> None:
    assert kept_text("x = 1\ny = 2\n", "x = 1\ny = 3\n") == "x = 1\ny = \n"
    assert kept_text("alpha beta", "gamma delta") == " "
    assert kept_text("same", "same") == "same"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.1),
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ],
)
def test_what_openai_refuses_with_a_prediction_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_prediction(_req(**{field: value}))
    assert caught.value.param == field


def test_text_parts_are_one_prediction() -> None:
    req = _req(prediction={"type": "content", "content": [{"type": "text", "text": "a "}] * 2})
    assert req.prediction is not None and req.prediction.text == "a a "
    check_prediction(req)


def test_a_prediction_past_the_window_is_refused_before_counting() -> None:
    calls: list[str] = []

    async def count(text: str) -> int:
        calls.append(text)
        return len(text)

    req = _req(prediction={"type": "content", "content": "x" * 10_000})
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(prediction_tokens(req, 100, count))
    assert caught.value.param == "prediction" and calls == []
    with pytest.raises(InvalidRequestError):
        asyncio.run(
            prediction_tokens(
                _req(prediction={"type": "content", "content": "x" * 101}), 100, count
            )
        )
    assert asyncio.run(prediction_tokens(_req(), 100, count)) == 5


def test_rejected_tokens_are_billed_as_output() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=4, total_tokens=14)
    out = asyncio.run(with_prediction(usage, "one two three four", 4, "one two five", _words))
    details = out.completion_tokens_details
    assert (details.accepted_prediction_tokens, details.rejected_prediction_tokens) == (2, 2)
    assert (out.completion_tokens, out.total_tokens) == (6, 16)
