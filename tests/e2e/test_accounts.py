"""Keys, limits, revocation and usage through a live server and the openai client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from corral.catalog.schema import embedded_model_path
from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

ADMIN = "e2e-admin-key-0123456789abcdef0123"


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env={**os.environ, "CORRAL_DATA_DIR": str(data_dir), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


PRICED = "priced-2024-01-01"


def priced_catalog(folder: Path) -> Path:
    """An operator catalog adding a (very) expensive model on the embedded GGUF."""
    path = folder / "priced.yaml"
    path.write_text(
        f"""version: 1
families:
  - id: priced
    name: Priced
    owner: corral-tests
    description: The embedded model at a price that makes budgets bite.
    context_window: 2048
    capabilities: [chat]
    pricing: {{input: 1000.0, cached_input: 500.0, output: 2000.0}}
    snapshots:
      - id: {PRICED}
        stages: {{active: 2024-01-01}}
        memory_mib: 300
        source: {{path: {embedded_model_path()}}}
"""
    )
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    data = tmp_path_factory.mktemp("secured")
    key = cli(data, "keys", "create", "--project", "e2e", "--rpm", "1000")
    env = {"CORRAL_ADMIN_KEY": ADMIN, "CORRAL_CATALOG": str(priced_catalog(data))}
    server = LiveServer(data, env=env)
    try:
        server.wait_ready()
        yield server, key
    finally:
        server.stop()


def client(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def chat(c: openai.OpenAI) -> openai.types.chat.ChatCompletion:
    return c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )


def test_key_required_and_accepted(secured: tuple[LiveServer, str]) -> None:
    server, key = secured
    with pytest.raises(openai.AuthenticationError):
        chat(client(server, "sk-corral-" + "x" * 43))
    with pytest.raises(openai.AuthenticationError):
        chat(client(server, "not even a key"))
    raw = client(server, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert raw.parse().choices[0].message is not None
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 1000
    assert raw.headers["x-request-id"].startswith("req")
    assert httpx.get(server.url + "/health").status_code == 200


def test_rate_limit_429_with_retry_after(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    key = cli(server.log.parent, "keys", "create", "--project", "limited", "--rpm", "2")
    c = client(server, key)
    chat(c)
    chat(c)
    with pytest.raises(openai.RateLimitError) as err:
        chat(c)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    assert err.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


def claude(server: LiveServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


def hello(c: anthropic.Anthropic) -> anthropic.types.Message:
    return c.messages.create(
        model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "hi"}]
    )


def test_anthropic_clients_authenticate_with_x_api_key(secured: tuple[LiveServer, str]) -> None:
    server, key = secured
    raw = claude(server, key).messages.with_raw_response.create(
        model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().content and raw.headers["x-ratelimit-limit-requests"] == "1000"
    with pytest.raises(anthropic.AuthenticationError) as err:
        hello(claude(server, "sk-corral-" + "x" * 43))
    assert err.value.status_code == 401
    assert err.value.body["type"] == "error"  # type: ignore[index]
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    r = httpx.get(server.url + "/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_anthropic_rate_limit_is_a_429_in_its_shape(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    key = cli(server.log.parent, "keys", "create", "--project", "limited-claude", "--rpm", "1")
    c = claude(server, key)
    hello(c)
    with pytest.raises(anthropic.RateLimitError) as err:
        hello(c)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    assert err.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_revocation_takes_effect_on_the_next_request(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    admin = {"Authorization": f"Bearer {ADMIN}"}
    project = httpx.post(
        server.url + "/v1/organization/projects", json={"name": "rev"}, headers=admin
    ).json()
    made = httpx.post(
        server.url + f"/v1/organization/projects/{project['id']}/api_keys",
        json={},
        headers=admin,
    ).json()
    c = client(server, made["value"])
    chat(c)
    gone = httpx.delete(
        server.url + f"/v1/organization/projects/{project['id']}/api_keys/{made['id']}",
        headers=admin,
    )
    assert gone.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        chat(c)


def test_revocation_by_the_cli_reaches_the_running_server(
    secured: tuple[LiveServer, str],
) -> None:
    """The server keeps keys it verified; `corral keys revoke`, another process, rewrites
    the change token beside the database, so the next request is refused all the same."""
    server, _ = secured
    data = server.log.parent
    key = cli(data, "keys", "create", "--project", "cli-rev")
    c = client(server, key)
    chat(c)
    chat(c)  # the second one is answered from the server's copy of the key
    prefix = key[: len("sk-corral-") + 4]
    line = next(row for row in cli(data, "keys", "list").splitlines() if f" {prefix}…" in row)
    cli(data, "keys", "revoke", line.split()[0])
    with pytest.raises(openai.AuthenticationError):
        chat(c)


def test_usage_reports_match_requests(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = cli(server.log.parent, "keys", "create", "--project", "metered")
    c = client(server, key)
    total_prompt = total_completion = 0
    for _ in range(3):
        r = chat(c)
        assert r.usage is not None
        total_prompt += r.usage.prompt_tokens
        total_completion += r.usage.completion_tokens
    stream = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    assert not any(chunk.usage for chunk in stream)  # not asked for: not sent
    start = int(time.time()) - 3600
    projects = httpx.get(server.url + "/v1/organization/projects", headers=admin).json()["data"]
    project_id = next(p["id"] for p in projects if p["name"] == "metered")
    usage = httpx.get(
        server.url + "/v1/organization/usage/completions",
        params={"start_time": start, "group_by": "model", "project_ids": project_id},
        headers=admin,
    ).json()
    results = [r for b in usage["data"] for r in b["results"]]
    assert sum(r["num_model_requests"] for r in results) == 4
    assert sum(r["input_tokens"] for r in results) >= total_prompt
    assert sum(r["output_tokens"] for r in results) == total_completion + 4
    costs = httpx.get(
        server.url + "/v1/organization/costs",
        params={"start_time": start, "project_ids": project_id},
        headers=admin,
    ).json()
    assert costs["object"] == "page"
    assert cli(server.log.parent, "usage", "--days", "1").count(MODEL) >= 1


def test_usage_api_reports_vector_store_bytes(secured: tuple[LiveServer, str]) -> None:
    """A project's store indexed by the embedded model: the usage API's vector stores
    report holds its bytes (usage_bytes) in today's bucket, under its project."""
    server, _ = secured
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = cli(server.log.parent, "keys", "create", "--project", "stored")
    c = client(server, key)
    text = "The VPN code is ZX-9042. Lunch is served from noon until two."
    f = c.files.create(file=("notes.txt", text.encode()), purpose="assistants")
    store = c.vector_stores.create(name="notes", file_ids=[f.id])
    deadline = time.monotonic() + 120
    while store.file_counts.in_progress and time.monotonic() < deadline:
        time.sleep(0.3)
        store = c.vector_stores.retrieve(store.id)
    assert store.file_counts.completed == 1 and store.usage_bytes > 0
    projects = httpx.get(server.url + "/v1/organization/projects", headers=admin).json()["data"]
    project_id = next(p["id"] for p in projects if p["name"] == "stored")
    usage = httpx.get(
        server.url + "/v1/organization/usage/vector_stores",
        params={"start_time": int(time.time()), "group_by": "project_id", "limit": 1},
        headers=admin,
    )
    assert usage.status_code == 200, usage.text
    [bucket] = usage.json()["data"]
    assert bucket["start_time"] <= time.time() < bucket["end_time"]
    assert {
        "object": "organization.usage.vector_stores.result",
        "usage_bytes": store.usage_bytes,
        "project_id": project_id,
    } in bucket["results"]
    only = httpx.get(
        server.url + "/v1/organization/usage/vector_stores",
        params={"start_time": int(time.time()), "project_ids": project_id, "limit": 1},
        headers=admin,
    ).json()
    assert [r["usage_bytes"] for r in only["data"][0]["results"]] == [store.usage_bytes]
    refused = httpx.get(
        server.url + "/v1/organization/usage/vector_stores",
        params={"start_time": int(time.time())},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert refused.status_code == 403


def test_idempotent_retry_bills_once(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = cli(server.log.parent, "keys", "create", "--project", "idem")
    c = client(server, key)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    headers = {"Idempotency-Key": "retry-0001"}
    first = c.chat.completions.with_raw_response.create(**body, extra_headers=headers)  # type: ignore[arg-type]
    again = c.chat.completions.with_raw_response.create(**body, extra_headers=headers)  # type: ignore[arg-type]
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.parse().id == first.parse().id
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    changed = {**body, "max_tokens": 9}
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(**changed, extra_headers=headers)  # type: ignore[arg-type]
    projects = httpx.get(server.url + "/v1/organization/projects", headers=admin).json()["data"]
    project_id = next(p["id"] for p in projects if p["name"] == "idem")
    usage = httpx.get(
        server.url + "/v1/organization/usage/completions",
        params={"start_time": int(time.time()) - 3600, "project_ids": project_id},
        headers=admin,
    ).json()
    assert sum(r["num_model_requests"] for b in usage["data"] for r in b["results"]) == 1


def test_budget_is_enforced_and_costs_add_up(secured: tuple[LiveServer, str]) -> None:
    server, _ = secured
    admin = {"Authorization": f"Bearer {ADMIN}"}
    budget = 0.4  # USD; one request reserves ~$0.36 (body bound at $1000/M + 3 outputs)
    project = httpx.post(
        server.url + "/v1/organization/projects",
        json={"name": "budgeted", "budget_usd": budget},
        headers=admin,
    ).json()
    made = httpx.post(
        server.url + f"/v1/organization/projects/{project['id']}/api_keys", json={}, headers=admin
    ).json()
    c = client(server, made["value"])
    served = 0
    with pytest.raises(openai.RateLimitError) as err:
        for _ in range(20):
            r = c.chat.completions.create(
                model=PRICED, messages=[{"role": "user", "content": "hi"}], max_tokens=3
            )
            assert r.model == PRICED
            served += 1
    assert served >= 1
    assert err.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert err.value.response.headers["x-should-retry"] == "false"
    costs = httpx.get(
        server.url + "/v1/organization/costs",
        params={"start_time": int(time.time()) - 3600, "project_ids": project["id"]},
        headers=admin,
    ).json()
    spent = sum(r["amount"]["value"] for b in costs["data"] for r in b["results"])
    assert 0 < spent <= budget


def test_logs_are_json_with_request_ids_and_no_secrets(secured: tuple[LiveServer, str]) -> None:
    server, key = secured
    c = client(server, key)
    chat(c)
    with pytest.raises(openai.AuthenticationError):
        chat(client(server, "sk-corral-" + "S" * 43))
    time.sleep(0.3)  # let the log lines reach the file
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    assert lines, "no JSON log lines"
    assert any(x["request_id"].startswith("req") for x in lines)
    text = server.log.read_text()
    for secret in (key, key.removeprefix("sk-corral-"), ADMIN, "S" * 43):
        assert secret not in text


CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_usage_page_in_chromium(secured: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, key = secured
    for _ in range(2):
        client(server, key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
    assert httpx.get(server.url + "/usage").status_code == 401
    user = httpx.get(server.url + "/usage", headers={"Authorization": f"Bearer {key}"})
    assert user.status_code == 403  # project keys don't see the organization's usage
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(extra_http_headers={"Authorization": f"Bearer {ADMIN}"})
            page.goto(server.url + "/usage")
            assert page.title().startswith("Usage")
            assert page.locator("#usage-chart svg").count() == 2
            assert page.locator("#usage-chart rect.bar").count() >= 2
            rows = page.locator("#usage-table tbody tr")
            models = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
            assert MODEL in models or any(m.startswith("smollm2") for m in models)
            page.screenshot(path=str(tmp_path / "usage.png"))
        finally:
            browser.close()
    assert (tmp_path / "usage.png").stat().st_size > 1000
