"""Files and fine-tuning jobs over a fake engine (no worker): validation, states, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from corral.app import create_app
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec
from corral.core.config import FineTuningSettings, Settings
from tests.fakes import FakeEngine, migrated

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF")
    registry = ModelRegistry()
    registry.add(ModelSpec(id="fake-model", path=base, owned_by="t", description=""), FakeEngine())
    settings = migrated(
        Settings(data_dir=tmp_path, fine_tuning=FineTuningSettings(max_example_tokens=50))
    )
    app = create_app(settings, registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def upload(http: httpx.AsyncClient, rows: list[object], purpose: str = "fine-tune") -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = await http.post("/v1/files", data={"purpose": purpose}, files={"file": ("d.jsonl", data)})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def settled(http: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    for _ in range(200):
        job: dict[str, object] = (await http.get(f"/v1/fine_tuning/jobs/{job_id}")).json()
        if job["status"] != "validating_files":
            return job
        await asyncio.sleep(0.01)
    raise TimeoutError


async def test_valid_file_is_queued_with_resolved_hyperparameters(http: httpx.AsyncClient) -> None:
    file_id = await upload(http, [GOOD] * 10)
    r = await http.post(
        "/v1/fine_tuning/jobs",
        json={"model": "fake-model", "training_file": file_id, "suffix": "s", "seed": 3},
    )
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["object"] == "fine_tuning.job" and job["status"] == "validating_files"
    assert job["hyperparameters"]["n_epochs"] == "auto"
    job = await settled(http, job["id"])
    assert job["status"] == "queued", job
    assert job["hyperparameters"] == {
        "n_epochs": 10,
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
    }
    assert job["method"]["supervised"]["hyperparameters"] == job["hyperparameters"]
    events = (await http.get(f"/v1/fine_tuning/jobs/{job['id']}/events")).json()["data"]
    assert events[0]["message"] == "Job enqueued"
    r = await http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    r = await http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert r.status_code == 409


async def test_too_long_example_names_its_line(http: httpx.AsyncClient) -> None:
    long = {
        "messages": [{"role": "user", "content": "w " * 80}, {"role": "assistant", "content": "x"}]
    }
    file_id = await upload(http, [GOOD, long])
    r = await http.post(
        "/v1/fine_tuning/jobs", json={"model": "fake-model", "training_file": file_id}
    )
    job = await settled(http, r.json()["id"])
    assert job["status"] == "failed"
    error = job["error"]
    assert isinstance(error, dict)
    assert "line 2: the example is" in error["message"] and "limit of 50" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "fake-model", "training_file": "file-x"}, 400, "training_file"),
        ({"model": "nope", "training_file": "F"}, 404, "model"),
        ({"model": "ft:x:y:z:w", "training_file": "F"}, 400, "model"),
        (
            {"model": "fake-model", "training_file": "F", "hyperparameters": {"n_epochs": 99}},
            400,
            "hyperparameters.n_epochs",
        ),
        ({"model": "fake-model", "training_file": "F", "suffix": "../x"}, 400, "suffix"),
        ({"model": "fake-model", "training_file": "F", "bogus": 1}, 400, "bogus"),
        (
            {
                "model": "fake-model",
                "training_file": "F",
                "hyperparameters": {},
                "method": {"type": "supervised"},
            },
            400,
            "hyperparameters",
        ),
    ],
)
async def test_bad_job_requests(
    http: httpx.AsyncClient, body: dict[str, object], status: int, param: str
) -> None:
    file_id = await upload(http, [GOOD])
    body = {k: (file_id if v == "F" else v) for k, v in body.items()}
    r = await http.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


async def test_lists_and_not_found(http: httpx.AsyncClient) -> None:
    file_id = await upload(http, [GOOD])
    ids = []
    for _ in range(3):
        r = await http.post(
            "/v1/fine_tuning/jobs", json={"model": "fake-model", "training_file": file_id}
        )
        ids.append(r.json()["id"])
    page = (await http.get("/v1/fine_tuning/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = (await http.get("/v1/fine_tuning/jobs", params={"after": ids[1]})).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert (await http.get("/v1/fine_tuning/jobs/ftjob-nope")).status_code == 404
    assert (await http.get("/v1/fine_tuning/jobs/ftjob-nope/events")).status_code == 404
    r = await http.get(f"/v1/fine_tuning/jobs/{ids[0]}/checkpoints")
    assert r.json()["data"] == []
    r = await http.delete("/v1/models/fake-model")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert (await http.get("/v1/fine_tuning/jobs", params={"limit": 0})).status_code == 400


async def test_a_deeply_nested_file_is_refused_at_upload(http: httpx.AsyncClient) -> None:
    # Issue 21: 100,000 levels were stored, then failed the job with a RecursionError.
    line = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    files = {"file": ("deep.jsonl", line)}
    r = await http.post("/v1/files", data={"purpose": "fine-tune"}, files=files)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "file" and "line 1" in error["message"]
    assert (await http.get("/v1/files")).json()["data"] == []
    ok = await http.post("/v1/files", data={"purpose": "user_data"}, files=files)
    assert ok.status_code == 200  # only a fine-tuning file must be readable as one
