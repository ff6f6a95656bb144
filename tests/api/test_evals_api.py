"""/v1/evals over a fake engine: definitions, runs driven by the worker, counts, paging,
cancel, and the 400s. (The real model: tests/e2e/test_evals.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from corral.app import create_app
from corral.core.config import EvalSettings, Settings
from corral.evals.worker import EvalWorker
from tests.fakes import fake_registry, migrated

SCHEMA = {
    "type": "object",
    "properties": {"q": {"type": "string"}, "expected": {"type": "string"}},
    "required": ["q", "expected"],
}
EVAL = {
    "name": "echo",
    "data_source_config": {"type": "custom", "item_schema": SCHEMA, "include_sample_schema": True},
    "testing_criteria": [
        {
            "type": "string_check",
            "name": "echoed",
            "input": "{{sample.output_text}}",
            "reference": "{{item.expected}}",
            "operation": "eq",
        }
    ],
}
# The fake engine answers with the last message: items whose `expected` is `q` pass.
ITEMS = [
    {"item": {"q": "one", "expected": "one"}},
    {"item": {"q": "two", "expected": "2"}},
    {"item": {"q": "three", "expected": "three"}},
    {"item": {"q": "four", "expected": "4"}},
    {"item": {"q": "five", "expected": "five"}},
]


def completions(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "completions",
        "model": "fake-model",
        "input_messages": {
            "type": "template",
            "template": [{"role": "user", "content": "{{item.q}}"}],
        },
        "source": {"type": "file_content", "content": items},
        **extra,
    }


@pytest.fixture
async def app(tmp_path: Path) -> FastAPI:
    settings = migrated(
        Settings(data_dir=tmp_path, evals=EvalSettings(max_items=50, embedding_model="fake-model"))
    )
    return create_app(settings, fake_registry())


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def worker(app: FastAPI) -> EvalWorker:
    w: EvalWorker = app.state.services.eval_worker
    return w


async def run_all(app: FastAPI) -> None:
    while (run_id := await worker(app).claim()) is not None:
        await worker(app).execute(run_id)


async def new_eval(http: httpx.AsyncClient, body: dict[str, Any] = EVAL) -> str:
    r = await http.post("/v1/evals", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def finished_run(
    app: FastAPI, http: httpx.AsyncClient, eval_id: str, data_source: dict[str, Any]
) -> dict[str, Any]:
    """Create a run, let the worker finish the queue, and read the run back."""
    r = await http.post(f"/v1/evals/{eval_id}/runs", json={"data_source": data_source})
    assert r.status_code == 200, r.text
    await run_all(app)
    run: dict[str, Any] = (await http.get(f"/v1/evals/{eval_id}/runs/{r.json()['id']}")).json()
    return run


async def test_a_run_counts_every_item(app: FastAPI, http: httpx.AsyncClient) -> None:
    eval_id = await new_eval(http)
    r = await http.post(f"/v1/evals/{eval_id}/runs", json={"data_source": completions(ITEMS)})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["object"] == "eval.run" and run["status"] == "queued"
    assert run["result_counts"] == {"total": 5, "passed": 0, "failed": 0, "errored": 0}
    await run_all(app)
    run = (await http.get(f"/v1/evals/{eval_id}/runs/{run['id']}")).json()
    assert run["status"] == "completed"
    assert run["result_counts"] == {"total": 5, "passed": 3, "failed": 2, "errored": 0}
    assert run["per_testing_criteria_results"] == [
        {"testing_criteria": "echoed", "passed": 3, "failed": 2}
    ]
    usage = run["per_model_usage"][0]
    assert usage["model_name"] == "fake-model" and usage["invocation_count"] == 5
    page = (await http.get(f"/v1/evals/{eval_id}/runs/{run['id']}/output_items?limit=2")).json()
    assert [i["datasource_item_id"] for i in page["data"]] == [0, 1] and page["has_more"]
    rest = (
        await http.get(
            f"/v1/evals/{eval_id}/runs/{run['id']}/output_items?limit=10&after={page['last_id']}"
        )
    ).json()
    items = page["data"] + rest["data"]
    assert [i["status"] for i in items] == ["pass", "fail", "pass", "fail", "pass"]
    assert items[1]["sample"]["output"][0]["content"] == "two"
    assert items[1]["results"][0] == {
        "name": "echoed",
        "type": "string_check",
        "score": 0.0,
        "passed": False,
    }
    failed = (
        await http.get(f"/v1/evals/{eval_id}/runs/{run['id']}/output_items?status=fail")
    ).json()
    assert len(failed["data"]) == 2


async def test_jsonl_runs_grade_the_given_samples(app: FastAPI, http: httpx.AsyncClient) -> None:
    eval_id = await new_eval(http)
    rows = [
        {"item": {"q": "a", "expected": "x"}, "sample": {"output_text": "x"}},
        {"item": {"q": "b", "expected": "y"}, "sample": {"output_text": "z"}},
    ]
    source = {"type": "jsonl", "source": {"type": "file_content", "content": rows}}
    run = await finished_run(app, http, eval_id, source)
    assert run["result_counts"] == {"total": 2, "passed": 1, "failed": 1, "errored": 0}
    assert run["per_model_usage"] == []
    missing = {
        "type": "jsonl",
        "source": {"type": "file_content", "content": [{"item": rows[0]["item"]}]},
    }
    r = await http.post(f"/v1/evals/{eval_id}/runs", json={"data_source": missing})
    assert r.status_code == 400 and r.json()["error"]["param"] == "data_source.source"


async def test_cancel_a_queued_run_and_crud(app: FastAPI, http: httpx.AsyncClient) -> None:
    eval_id = await new_eval(http)
    run = (
        await http.post(f"/v1/evals/{eval_id}/runs", json={"data_source": completions(ITEMS)})
    ).json()
    r = await http.post(f"/v1/evals/{eval_id}/runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert await worker(app).claim() is None
    r = await http.post(f"/v1/evals/{eval_id}/runs/{run['id']}/cancel")
    assert r.status_code == 409
    listed = (await http.get(f"/v1/evals/{eval_id}/runs")).json()
    assert [x["id"] for x in listed["data"]] == [run["id"]]
    r = await http.post(f"/v1/evals/{eval_id}", json={"name": "renamed", "metadata": {"k": "v"}})
    assert r.json()["name"] == "renamed" and r.json()["metadata"] == {"k": "v"}
    assert (await http.get("/v1/evals")).json()["data"][0]["id"] == eval_id
    r = await http.delete(f"/v1/evals/{eval_id}")
    assert r.json() == {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}
    assert (await http.get(f"/v1/evals/{eval_id}")).status_code == 404
    assert (await http.get(f"/v1/evals/{eval_id}/runs/{run['id']}")).status_code == 404


async def test_a_file_data_source(app: FastAPI, http: httpx.AsyncClient) -> None:
    import json

    data = "".join(json.dumps(r) + "\n" for r in ITEMS[:2]).encode()
    r = await http.post("/v1/files", data={"purpose": "evals"}, files={"file": ("d.jsonl", data)})
    assert r.status_code == 200, r.text
    eval_id = await new_eval(http)
    source = completions([])
    source["source"] = {"type": "file_id", "id": r.json()["id"]}
    run = await finished_run(app, http, eval_id, source)
    assert run["result_counts"] == {"total": 2, "passed": 1, "failed": 1, "errored": 0}


@pytest.mark.parametrize(
    ("data_source", "param"),
    [
        (completions([{"item": {"q": "x"}}]), "data_source.source.content[0].item"),
        (completions(ITEMS, model="no-such-model"), "data_source.model"),
        (completions([{"item": {"q": "x", "expected": "y"}}] * 51), "data_source.source"),
        (
            completions(
                ITEMS,
                input_messages={
                    "type": "template",
                    "template": [{"role": "user", "content": "{{item.question}}"}],
                },
            ),
            "data_source.input_messages.template[0].content",
        ),
        (
            completions(
                ITEMS,
                input_messages={
                    "type": "template",
                    "template": [{"role": "user", "content": "{{sample.output_text}}"}],
                },
            ),
            "data_source.input_messages.template[0].content",
        ),
        (
            completions(ITEMS, sampling_params={"temperature": 5}),
            "data_source.sampling_params.temperature",
        ),
        ({**completions(ITEMS), "type": "responses"}, "data_source.type"),
        (
            completions([{"item": {"q": "x", "expected": "y"}, "extra": 1}]),
            "data_source.source.content[0].extra",
        ),
    ],
)
async def test_bad_runs_are_400_with_param(
    http: httpx.AsyncClient, data_source: dict[str, Any], param: str
) -> None:
    eval_id = await new_eval(http)
    r = await http.post(f"/v1/evals/{eval_id}/runs", json={"data_source": data_source})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


async def test_bad_evals_are_400_with_param(http: httpx.AsyncClient) -> None:
    unknown = {**EVAL, "testing_criteria": [{**EVAL["testing_criteria"][0], "type": "regex"}]}  # type: ignore[dict-item]
    r = await http.post("/v1/evals", json=unknown)
    assert r.status_code == 400 and r.json()["error"]["param"] == "testing_criteria[0].type"
    missing = {
        **EVAL,
        "testing_criteria": [{**EVAL["testing_criteria"][0], "reference": "{{item.answer}}"}],  # type: ignore[dict-item]
    }
    r = await http.post("/v1/evals", json=missing)
    assert r.status_code == 400 and r.json()["error"]["param"] == "testing_criteria[0].reference"
    assert "item_schema" in r.json()["error"]["message"]
    r = await http.post("/v1/evals", json={**EVAL, "testing_criteria": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "testing_criteria"
    r = await http.get("/v1/evals/eval-nope")
    assert r.status_code == 404 and r.json()["error"]["param"] == "eval_id"


async def test_a_python_grader_runs_sandboxed_or_is_refused(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    grader = {
        "type": "python",
        "name": "same length",
        "source": "def grade(sample, item):\n"
        "    return 1.0 if len(sample['output_text']) == len(item['expected']) else 0.0\n",
        "pass_threshold": 1.0,
    }
    r = await http.post("/v1/evals", json={**EVAL, "testing_criteria": [grader]})
    reason = await app.state.services.eval_worker._sandbox.unavailable()
    if reason is not None:
        assert r.status_code == 400 and r.json()["error"]["param"] == "testing_criteria[0].type"
        pytest.skip(f"no sandbox here, and the API says so: {reason}")
    assert r.status_code == 200, r.text
    run = await finished_run(app, http, r.json()["id"], completions(ITEMS))
    # echoed q vs expected: one/one, two/2, three/three, four/4, five/five
    assert run["result_counts"] == {"total": 5, "passed": 3, "failed": 2, "errored": 0}


async def test_cosine_similarity_embeds_through_the_served_model(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    grader = {
        "type": "text_similarity",
        "name": "close",
        "input": "{{sample.output_text}}",
        "reference": "{{item.expected}}",
        "evaluation_metric": "cosine",
        "pass_threshold": 0.99,
    }
    eval_id = await new_eval(http, {**EVAL, "testing_criteria": [grader]})
    run = await finished_run(app, http, eval_id, completions(ITEMS))
    # the fake engine embeds a text as [len, 0.5, -1]: equal texts score 1, the others less
    assert run["result_counts"] == {"total": 5, "passed": 3, "failed": 2, "errored": 0}
    calls = {u["model_name"]: u["invocation_count"] for u in run["per_model_usage"]}
    assert calls == {"fake-model": 10}  # a sample and an embedding call per item


async def test_eval_costs_reach_the_cost_counter(tmp_path: Path) -> None:
    """Eval runs are metered by the same meter as the API: their cost is on /metrics."""
    settings = migrated(Settings(data_dir=tmp_path / "priced"))
    prices = {"price_input_per_m": 3.0, "price_output_per_m": 5.0}
    app = create_app(settings, fake_registry(**prices))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        eval_id = await new_eval(http)
        run = await finished_run(app, http, eval_id, completions(ITEMS))
        assert run["status"] == "completed", run
        charged = sum(u["cost_usd"] for u in run["per_model_usage"])
        assert charged > 0
        metrics = (await http.get("/metrics")).text
    line = next(
        m for m in metrics.splitlines() if m.startswith('corral_cost_usd_total{model="fake-model"}')
    )
    assert float(line.split()[-1]) == pytest.approx(charged, rel=1e-6)
