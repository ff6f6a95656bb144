"""The Evals API with the openai client against a live server and the embedded model.

The SDK marks `client.evals` deprecated since OpenAI shut its own Evals API down
(2026-11-30); corral serves it still (docs/evals.md), and these tests drive it with the SDK
on purpose, so its warning is expected here and kept out of the report."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.conftest import MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Evals API is deprecated:DeprecationWarning"),
]

SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}
ITEMS = [
    {"item": {"question": f"What is {a} + {b}?", "answer": str(a + b)}}
    for a, b in [(1, 1), (2, 3), (4, 4), (10, 5), (7, 2), (3, 3)]
]
TEMPLATE = {
    "type": "template",
    "template": [
        {"role": "system", "content": "Answer with the number only."},
        {"role": "user", "content": "{{item.question}}"},
    ],
}


def create_eval(client: openai.OpenAI) -> Any:
    return client.evals.create(
        name="addition",
        data_source_config={
            "type": "custom",
            "item_schema": SCHEMA,
            "include_sample_schema": True,
        },
        testing_criteria=[
            {
                "type": "string_check",
                "name": "has the answer",
                "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}",
                "operation": "like",
            },
            {
                "type": "score_model",
                "name": "judge",
                "model": MODEL,
                "input": [
                    {
                        "role": "user",
                        "content": "Question: {{item.question}}\nReply: {{sample.output_text}}\n"
                        "Expected: {{item.answer}}\nScore the reply from 0 to 1.",
                    }
                ],
                "range": [0, 1],
                "pass_threshold": 0.5,
            },
        ],
    )


def data_source(items: list[dict[str, Any]], max_tokens: int = 12) -> Any:
    return {
        "type": "completions",
        "model": MODEL,
        "input_messages": TEMPLATE,
        "sampling_params": {"temperature": 0, "seed": 1, "max_completion_tokens": max_tokens},
        "source": {"type": "file_content", "content": items},
    }


def wait(client: openai.OpenAI, eval_id: str, run_id: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        if run.status in ("completed", "failed", "canceled"):
            return run
        time.sleep(0.5)
    raise TimeoutError(run_id)


def test_string_check_and_score_model_run_against_the_embedded_model(
    client: openai.OpenAI,
) -> None:
    ev = create_eval(client)
    assert ev.object == "eval" and ev.id.startswith("eval")
    run = client.evals.runs.create(ev.id, name="base", data_source=data_source(ITEMS))
    assert run.status == "queued" and run.result_counts.total == len(ITEMS)
    run = wait(client, ev.id, run.id)
    assert run.status == "completed", run.error
    counts = run.result_counts
    assert counts.total == len(ITEMS) == counts.passed + counts.failed + counts.errored

    items = client.evals.runs.output_items.list(run.id, eval_id=ev.id, limit=100).data
    assert sorted(i.datasource_item_id for i in items) == list(range(len(ITEMS)))
    by_status = {s: sum(i.status == s for i in items) for s in ("pass", "fail", "error")}
    assert by_status == {"pass": counts.passed, "fail": counts.failed, "error": counts.errored}
    for item in items:
        assert item.datasource_item == ITEMS[item.datasource_item_id]["item"]
        assert item.sample.model and item.sample.usage.completion_tokens > 0
        assert [r.name for r in item.results] == ["has the answer", "judge"]
        text = item.sample.output[0].content or ""
        assert item.results[0].passed == (item.datasource_item["answer"] in text)
        if item.status != "error":
            assert item.results[1].score in {round(x / 10, 6) for x in range(11)}
            assert item.status == ("pass" if all(r.passed for r in item.results) else "fail")

    graders = {c.testing_criteria: c for c in run.per_testing_criteria_results}
    assert graders["has the answer"].passed == sum(i.results[0].passed for i in items)
    usage = run.per_model_usage[0]
    # one sample and one judge call per item
    assert usage.invocation_count == 2 * len(ITEMS) and usage.total_tokens > 0


def test_cancel_stops_a_run(client: openai.OpenAI) -> None:
    ev = create_eval(client)
    many = [ITEMS[i % len(ITEMS)] for i in range(40)]
    run = client.evals.runs.create(ev.id, data_source=data_source(many, max_tokens=48))
    deadline = time.monotonic() + 120
    while client.evals.runs.retrieve(run.id, eval_id=ev.id).status == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = client.evals.runs.cancel(run.id, eval_id=ev.id)
    assert cancelled.status == "canceled"
    time.sleep(3)  # anything still in flight has stopped by now
    done = client.evals.runs.output_items.list(run.id, eval_id=ev.id, limit=100).data
    time.sleep(2)
    again = client.evals.runs.output_items.list(run.id, eval_id=ev.id, limit=100).data
    assert len(done) == len(again) < len(many)
    assert client.evals.runs.retrieve(run.id, eval_id=ev.id).status == "canceled"


@pytest.mark.parametrize(
    ("criterion", "param"),
    [
        ({"type": "regex_check", "name": "x"}, "testing_criteria[0].type"),
        (
            {
                "type": "string_check",
                "name": "x",
                "input": "{{sample.output_text}}",
                "reference": "{{item.expected}}",
                "operation": "eq",
            },
            "testing_criteria[0].reference",
        ),
    ],
)
def test_bad_definitions_are_400_with_param(
    client: openai.OpenAI, criterion: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.evals.create(
            data_source_config={
                "type": "custom",
                "item_schema": SCHEMA,
                "include_sample_schema": True,
            },
            testing_criteria=[criterion],  # type: ignore[list-item]
        )
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param, body
