"""Tenant isolation, as a matrix: project B's key against every resource of project A is
answered 404 (403 for key management), and no answer carries A's data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from corral.app import create_app
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec
from corral.core.config import Settings
from tests.fakes import FakeEngine, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"
SECRET = "tenant-a-secret-words"  # in A's content: never in an answer to B
CHAT = [{"role": "user", "content": SECRET}, {"role": "assistant", "content": SECRET}]
EVAL = {
    "name": SECRET,
    "data_source_config": {
        "type": "custom",
        "item_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
    "testing_criteria": [
        {
            "type": "string_check",
            "name": "c",
            "input": "{{item.q}}",
            "reference": "{{item.q}}",
            "operation": "eq",
        }
    ],
}


CREATES = ("/v1/fine_tuning/jobs", "/v1/batches", "/v1/responses")


@dataclass
class Tenants:
    app: FastAPI
    http: httpx.AsyncClient
    a: dict[str, str]
    b: dict[str, str]
    a_project: str


async def key_for(http: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    project = await http.post("/v1/organization/projects", json={"name": name}, headers=admin)
    path = f"/v1/organization/projects/{project.json()['id']}/api_keys"
    key = (await http.post(path, json={}, headers=admin)).json()["value"]
    return project.json()["id"], {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[Tenants]:
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF")
    registry = ModelRegistry()
    registry.add(ModelSpec(id="fake-model", path=base, owned_by="t", description=""), FakeEngine())
    settings = migrated(Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN)))
    app = create_app(settings, registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        a_project, a = await key_for(http, "a")
        _, b = await key_for(http, "b")
        yield Tenants(app, http, a, b, a_project)


async def upload(t: Tenants, rows: list[object], purpose: str) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    files = {"file": ("d.jsonl", data)}
    r = await t.http.post("/v1/files", data={"purpose": purpose}, files=files, headers=t.a)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def created(t: Tenants, path: str, body: dict[str, object]) -> str:
    r = await t.http.post(path, json=body, headers=t.a)
    assert r.status_code == 200, (path, r.text)
    return str(r.json()["id"])


async def test_another_projects_resources_are_not_found(tenants: Tenants) -> None:
    t = tenants
    file_id = await upload(t, [{"messages": CHAT}] * 10, "fine-tune")
    job_id = await created(
        t, "/v1/fine_tuning/jobs", {"model": "fake-model", "training_file": file_id}
    )
    eval_id = await created(t, "/v1/evals", EVAL)
    source = {"type": "file_content", "content": [{"item": {"q": SECRET}}]}
    run_id = await created(
        t,
        f"/v1/evals/{eval_id}/runs",
        {"data_source": {"type": "jsonl", "source": source}, "name": SECRET},
    )
    worker = t.app.state.services.eval_worker
    while (claimed := await worker.claim()) is not None:
        await worker.execute(claimed)
    items = await t.http.get(f"/v1/evals/{eval_id}/runs/{run_id}/output_items", headers=t.a)
    item_id = items.json()["data"][0]["id"]
    line = {
        "custom_id": "x",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "fake-model", "messages": CHAT[:1]},
    }
    batch_file = await upload(t, [line], "batch")
    batch_id = await created(
        t,
        "/v1/batches",
        {
            "input_file_id": batch_file,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    response_id = await created(
        t, "/v1/responses", {"model": "fake-model", "input": SECRET, "store": True}
    )
    conversation_id = await created(
        t, "/v1/conversations", {"items": [{"role": "user", "content": SECRET}]}
    )
    items = await t.http.get(f"/v1/conversations/{conversation_id}/items", headers=t.a)
    conv_item = items.json()["data"][0]["id"]
    await asyncio.sleep(0)  # let the fine-tuning job's validation start; it is A's either way

    run = f"/v1/evals/{eval_id}/runs/{run_id}"
    conv = f"/v1/conversations/{conversation_id}"
    matrix = [
        ("GET", f"/v1/files/{file_id}", None),
        ("GET", f"/v1/files/{file_id}/content", None),
        ("DELETE", f"/v1/files/{file_id}", None),
        ("GET", f"/v1/fine_tuning/jobs/{job_id}", None),
        ("GET", f"/v1/fine_tuning/jobs/{job_id}/events", None),
        ("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints", None),
        ("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel", None),
        ("POST", "/v1/fine_tuning/jobs", {"model": "fake-model", "training_file": file_id}),
        ("GET", f"/v1/evals/{eval_id}", None),
        ("POST", f"/v1/evals/{eval_id}", {"name": "taken"}),
        ("GET", f"/v1/evals/{eval_id}/runs", None),
        ("POST", f"/v1/evals/{eval_id}/runs", {"data_source": {"type": "jsonl", "source": source}}),
        ("GET", run, None),
        ("GET", f"{run}/output_items", None),
        ("GET", f"{run}/output_items/{item_id}", None),
        ("POST", f"{run}/cancel", None),
        ("DELETE", run, None),
        ("DELETE", f"/v1/evals/{eval_id}", None),
        ("GET", f"/v1/batches/{batch_id}", None),
        ("POST", f"/v1/batches/{batch_id}/cancel", None),
        (
            "POST",
            "/v1/batches",
            {
                "input_file_id": batch_file,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ),
        ("GET", f"/v1/responses/{response_id}", None),
        ("GET", f"/v1/responses/{response_id}/input_items", None),
        ("POST", f"/v1/responses/{response_id}/cancel", None),
        ("DELETE", f"/v1/responses/{response_id}", None),
        (
            "POST",
            "/v1/responses",
            {"model": "fake-model", "input": "x", "previous_response_id": response_id},
        ),
        ("GET", conv, None),
        ("POST", conv, {"metadata": {"k": "v"}}),
        ("GET", f"{conv}/items", None),
        ("GET", f"{conv}/items/{conv_item}", None),
        ("POST", f"{conv}/items", {"items": [{"role": "user", "content": "x"}]}),
        ("DELETE", f"{conv}/items/{conv_item}", None),
        ("DELETE", conv, None),
        (
            "POST",
            "/v1/responses",
            {"model": "fake-model", "input": "x", "conversation": conversation_id},
        ),
    ]
    for method, path, body in matrix:
        r = await t.http.request(method, path, json=body, headers=t.b)
        # A create that names A's object is refused as if it did not exist (400 with the
        # param named, as OpenAI's); an object of A's addressed by path is not found.
        refused = (400, 404) if path in CREATES else (404,)
        assert r.status_code in refused, (method, path, r.status_code, r.text)
        assert SECRET not in r.text, (method, path)

    keys = f"/v1/organization/projects/{t.a_project}/api_keys"
    for method, path in [
        ("GET", keys),
        ("POST", keys),
        ("DELETE", f"{keys}/key-x"),
        ("GET", "/v1/organization/projects"),
        ("GET", "/v1/organization/usage/completions?start_time=0"),
        ("GET", "/v1/organization/usage/vector_stores?start_time=0"),
        ("GET", "/v1/organization/costs?start_time=0"),
    ]:
        r = await t.http.request(method, path, json={}, headers=t.b)
        assert r.status_code in (403, 404), (method, path, r.status_code)
        assert t.a_project not in r.text and "redacted_value" not in r.text

    # Lists show B nothing of A's; A's own view is intact after all of B's attempts.
    for path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/evals", "/v1/batches"):
        listed = (await t.http.get(path, headers=t.b)).json()
        assert listed["data"] == [], path
        assert (await t.http.get(path, headers=t.a)).json()["data"], path
    for path in (f"/v1/files/{file_id}", run, f"/v1/responses/{response_id}", conv):
        assert (await t.http.get(path, headers=t.a)).status_code == 200, path
