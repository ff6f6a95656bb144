"""Grading one sample: string checks, text similarity, and model judges.

Judges (``label_model``, ``score_model``) are models corral serves; their answer is
constrained to a JSON object by a JSON schema, so a label is always one of the labels
and a score one of a fixed set of points of the range (see ``score_choices``); an
answer outside those is an error, never clamped.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from corral.core.errors import CorralError
from corral.evals import similarity
from corral.evals.sandbox import SandboxError
from corral.evals.templates import TemplateError, render
from corral.protocol.evals import (
    Grader,
    GraderResult,
    LabelModelGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)

# (model, chat request body without model) -> a chat.completion object as a dict
Chat = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
# texts -> one embedding vector per text
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
# (source, sample, item) -> the score a sandboxed python grader returned
Python = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[float]]

JUDGE_MAX_TOKENS = 64  # a constrained JSON answer is about ten tokens
SCORE_STEPS = 10


class GradingError(Exception):
    """This grader could not grade this sample (the item counts as errored)."""


def string_check(grader: StringCheckGrader, context: dict[str, Any]) -> GraderResult:
    got, want = render(grader.input, context), render(grader.reference, context)
    if grader.operation == "eq":
        passed = got == want
    elif grader.operation == "ne":
        passed = got != want
    elif grader.operation == "like":  # OpenAI's like/ilike: the input contains the reference
        passed = want in got
    else:
        passed = want.lower() in got.lower()
    return GraderResult(name=grader.name, type=grader.type, score=float(passed), passed=passed)


async def text_similarity(
    grader: TextSimilarityGrader, context: dict[str, Any], embed: Embed
) -> GraderResult:
    got, want = render(grader.input, context), render(grader.reference, context)
    if grader.evaluation_metric == "cosine":
        a, b = await embed([got, want])
        score = similarity.cosine(a, b)
    else:
        score = similarity.metric(grader.evaluation_metric)(got, want)
    return GraderResult(
        name=grader.name,
        type=grader.type,
        score=round(score, 6),
        passed=score >= grader.pass_threshold,
    )


def _judge_messages(
    grader: LabelModelGrader | ScoreModelGrader, context: dict[str, Any], instruction: str
) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": instruction}]
    for message in grader.input:
        role = "system" if message.role == "developer" else message.role
        messages.append({"role": role, "content": render(message.text(), context)})
    return messages


def _json_format(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


async def _ask(chat: Chat, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    response = await chat(model, body)
    content = response["choices"][0]["message"].get("content") or ""
    try:
        answer = json.loads(content)
    except json.JSONDecodeError as exc:
        raise GradingError(f"the judge {model} did not answer in JSON: {content[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise GradingError(f"the judge {model} answered {content[:200]!r}, not an object")
    return answer, content


async def label_model(
    grader: LabelModelGrader, context: dict[str, Any], chat: Chat
) -> GraderResult:
    instruction = (
        "You are a grader. Read the conversation and reply with a JSON object "
        f'{{"label": L}} where L is exactly one of: {", ".join(grader.labels)}.'
    )
    body = {
        "messages": _judge_messages(grader, context, instruction),
        "response_format": _json_format("label", {"label": {"enum": grader.labels}}),
        "temperature": 0,
        "max_completion_tokens": JUDGE_MAX_TOKENS,
    }
    answer, content = await _ask(chat, grader.model, body)
    label = answer.get("label")
    if label not in grader.labels:
        raise GradingError(f"the judge answered the label {label!r}, not one of the labels")
    passed = label in grader.passing_labels
    return GraderResult(
        name=grader.name,
        type=grader.type,
        score=float(passed),
        passed=passed,
        sample={"label": label, "output_text": content, "model": grader.model},
    )


def score_range(grader: ScoreModelGrader) -> tuple[float, float]:
    low, high = grader.range or (0.0, 1.0)
    return low, high


def score_choices(low: float, high: float) -> list[float]:
    """The scores a judge may give: every integer of an integer range such as [1, 10],
    otherwise eleven evenly spaced points. A free-form number let a small judge answer
    outside the range (2.0 on [0, 1] in four items of six, seen here)."""
    if float(low).is_integer() and float(high).is_integer() and 2 <= high - low <= 100:
        return [float(v) for v in range(int(low), int(high) + 1)]
    step = (high - low) / SCORE_STEPS
    return [round(low + i * step, 6) for i in range(SCORE_STEPS + 1)]


def score_threshold(grader: ScoreModelGrader) -> float:
    low, high = score_range(grader)
    return grader.pass_threshold if grader.pass_threshold is not None else (low + high) / 2


async def score_model(
    grader: ScoreModelGrader, context: dict[str, Any], chat: Chat
) -> GraderResult:
    low, high = score_range(grader)
    instruction = (
        "You are a grader. Read the conversation and reply with a JSON object "
        f'{{"score": S}} where S is a number from {low:g} to {high:g}.'
    )
    sampling = grader.sampling_params
    body: dict[str, Any] = {
        "messages": _judge_messages(grader, context, instruction),
        "response_format": _json_format("score", {"score": {"enum": score_choices(low, high)}}),
        "temperature": 0,
        "max_completion_tokens": JUDGE_MAX_TOKENS,
    }
    if sampling is not None:
        body |= {
            k: v
            for k, v in {
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "seed": sampling.seed,
                "max_completion_tokens": sampling.max_completions_tokens,
            }.items()
            if v is not None
        }
    answer, content = await _ask(chat, grader.model, body)
    score = answer.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or not low <= score <= high:
        raise GradingError(f"the judge gave the score {score!r}, outside [{low:g}, {high:g}]")
    return GraderResult(
        name=grader.name,
        type=grader.type,
        score=float(score),
        passed=score >= score_threshold(grader),
        sample={"score": score, "output_text": content, "model": grader.model},
    )


async def python_grader(
    grader: PythonGrader, context: dict[str, Any], python: Python
) -> GraderResult:
    score = await python(grader.source, context.get("sample") or {}, context["item"])
    threshold = grader.pass_threshold if grader.pass_threshold is not None else 0.5
    return GraderResult(name=grader.name, type=grader.type, score=score, passed=score >= threshold)


async def _no_python(source: str, sample: dict[str, Any], item: dict[str, Any]) -> float:
    raise GradingError("python graders are not enabled here")


async def grade(
    grader: Grader,
    context: dict[str, Any],
    chat: Chat,
    embed: Embed,
    python: Python = _no_python,
) -> GraderResult:
    """One grader on one sample; what it could not grade comes back as an error result."""
    try:
        if isinstance(grader, PythonGrader):
            return await python_grader(grader, context, python)
        if isinstance(grader, StringCheckGrader):
            return string_check(grader, context)
        if isinstance(grader, TextSimilarityGrader):
            return await text_similarity(grader, context, embed)
        if isinstance(grader, LabelModelGrader):
            return await label_model(grader, context, chat)
        return await score_model(grader, context, chat)
    except (GradingError, TemplateError, CorralError, SandboxError) as exc:
        return GraderResult(
            name=grader.name, type=grader.type, score=0.0, passed=False, error=str(exc)
        )
