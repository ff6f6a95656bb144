from __future__ import annotations

import json
from typing import Any

import pytest

from corral.evals.graders import grade, score_choices
from corral.protocol.evals import (
    LabelModelGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)

CONTEXT = {"item": {"answer": "Paris"}, "sample": {"output_text": "It is paris."}}


def judge(answer: Any) -> Any:
    """A chat function answering every judge call with ``answer`` (as JSON)."""
    calls: list[dict[str, Any]] = []

    async def chat(model: str, body: dict[str, Any]) -> dict[str, Any]:
        calls.append(body)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}

    chat.calls = calls  # type: ignore[attr-defined]
    return chat


async def no_embed(texts: list[str]) -> list[list[float]]:
    raise AssertionError("not used")


def check(operation: str) -> StringCheckGrader:
    return StringCheckGrader(
        type="string_check",
        name="c",
        input="{{sample.output_text}}",
        reference="{{item.answer}}",
        operation=operation,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("operation", "passed"), [("eq", False), ("ne", True), ("like", False), ("ilike", True)]
)
async def test_string_check(operation: str, passed: bool) -> None:
    result = await grade(check(operation), CONTEXT, judge({}), no_embed)
    assert result.passed is passed and result.score == float(passed) and result.error is None


async def test_text_similarity_threshold_and_cosine() -> None:
    fuzzy = TextSimilarityGrader(
        type="text_similarity",
        name="f",
        input="{{sample.output_text}}",
        reference="It is Paris.",
        evaluation_metric="fuzzy_match",
        pass_threshold=0.9,
    )
    result = await grade(fuzzy, CONTEXT, judge({}), no_embed)
    assert result.passed and 0.9 <= result.score < 1.0

    async def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0], [0.6, 0.8]]

    cos = fuzzy.model_copy(update={"evaluation_metric": "cosine", "pass_threshold": 0.7})
    result = await grade(cos, CONTEXT, judge({}), embed)
    assert result.score == pytest.approx(0.6) and not result.passed


def label_grader() -> LabelModelGrader:
    return LabelModelGrader.model_validate(
        {
            "type": "label_model",
            "name": "l",
            "model": "judge",
            "input": [{"role": "user", "content": "Is {{sample.output_text}} right?"}],
            "labels": ["right", "wrong"],
            "passing_labels": ["right"],
        }
    )


async def test_label_model_is_constrained_to_the_labels() -> None:
    chat = judge({"label": "right"})
    result = await grade(label_grader(), CONTEXT, chat, no_embed)
    assert result.passed and result.sample and result.sample["label"] == "right"
    body = chat.calls[0]  # type: ignore[attr-defined]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["right", "wrong"]
    assert body["messages"][-1]["content"] == "Is It is paris. right?"


async def test_a_judge_outside_its_choices_is_an_error_not_a_fail() -> None:
    result = await grade(label_grader(), CONTEXT, judge({"label": "maybe"}), no_embed)
    assert result.error and not result.passed
    result = await grade(label_grader(), CONTEXT, judge("not json"), no_embed)
    assert result.error and "JSON" in result.error


def score_grader(**extra: Any) -> ScoreModelGrader:
    return ScoreModelGrader.model_validate(
        {
            "type": "score_model",
            "name": "s",
            "model": "judge",
            "input": [{"role": "user", "content": "Score {{sample.output_text}}"}],
            **extra,
        }
    )


async def test_score_model_threshold_and_range() -> None:
    result = await grade(score_grader(pass_threshold=0.7), CONTEXT, judge({"score": 0.8}), no_embed)
    assert result.passed and result.score == 0.8
    result = await grade(score_grader(), CONTEXT, judge({"score": 0.4}), no_embed)
    assert not result.passed and result.error is None  # default threshold: mid-range
    result = await grade(score_grader(), CONTEXT, judge({"score": 2}), no_embed)
    assert result.error and "outside" in result.error


def test_score_choices() -> None:
    assert score_choices(0, 1) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert score_choices(1, 10) == [float(v) for v in range(1, 11)]
