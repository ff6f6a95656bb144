"""Server errors the fuzzer (tests/e2e/test_fuzz.py) found, each fixed at its cause: the
request that was a 500 is a 4xx (or a 200) now."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from pydantic import SecretStr

from corral.app import create_app
from corral.core.config import Settings
from tests.fakes import fake_registry, migrated

ADMIN = {"Authorization": "Bearer admin-key-for-tests-0123456789abcdef"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN["Authorization"][7:]))
    app = create_app(migrated(settings), fake_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=ADMIN) as c:
        yield c


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([{}], "items[0].type"),  # was a KeyError: 'type'
        ([{"role": "user", "content": "a"}, {"type": "bogus"}], "items[1].type"),
        ([{"role": "nobody", "content": "a"}], "items[0].role"),
        ([{"type": "function_call", "name": "f"}], "items[0].call_id"),
    ],
)
async def test_conversation_items_are_checked_when_added(
    http: httpx.AsyncClient, items: list[dict[str, object]], param: str
) -> None:
    r = await http.post("/v1/conversations", json={"items": items})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    made = (await http.post("/v1/conversations", json={})).json()
    r = await http.post(f"/v1/conversations/{made['id']}/items", json={"items": items})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


async def test_a_clients_item_id_never_collides(http: httpx.AsyncClient) -> None:
    """A taken id (in the same call, or anyone's conversation) was an IntegrityError: a 500
    that also told the client someone else's item had that id."""
    item = {"role": "user", "content": "x", "id": "msg_mine"}
    first = (await http.post("/v1/conversations", json={"items": [item]})).json()
    again = await http.post("/v1/conversations", json={"items": [item, item]})
    assert again.status_code == 200, again.text
    listed = (await http.get(f"/v1/conversations/{again.json()['id']}/items")).json()["data"]
    ids = [i["id"] for i in listed]
    assert len(set(ids)) == 2 and "msg_mine" not in ids
    added = await http.post(f"/v1/conversations/{first['id']}/items", json={"items": [item]})
    assert added.status_code == 200 and added.json()["data"][0]["id"] != "msg_mine"
    odd = [
        {"role": "user", "content": "x", "id": 5},
        {"role": "user", "content": "y", "id": "x" * 65},
    ]
    r = await http.post("/v1/conversations", json={"items": odd})
    assert r.status_code == 200, r.text
    kept = (await http.get(f"/v1/conversations/{r.json()['id']}/items")).json()["data"]
    assert all(isinstance(i["id"], str) and len(i["id"]) <= 64 for i in kept)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "p", "budget_usd": 5.46e307}, "budget_usd"),  # was an OverflowError
        ({"name": "p", "rpm": 2**40}, "rpm"),  # past PostgreSQL's integer
        ({"name": "p", "max_concurrent": 2**31}, "max_concurrent"),
        ({"name": "p", "budget_period": "week"}, "budget_period"),
    ],
)
async def test_project_limits_are_bounded(
    http: httpx.AsyncClient, body: dict[str, object], param: str
) -> None:
    r = await http.post("/v1/organization/projects", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    project = (await http.post("/v1/organization/projects", json={"name": "q"})).json()
    key = {"rpm": 2**40} if param != "budget_usd" else {"tpm": 2**31}
    r = await http.post(f"/v1/organization/projects/{project['id']}/api_keys", json=key)
    assert r.status_code == 400, r.text


NOT_IN_SCHEMA: list[tuple[dict[str, object], str]] = [
    ({"rpm": "60"}, "rpm"),  # was coerced to 60 (the schema says integer)
    ({"tpm": True}, "tpm"),  # was 1
    ({"max_concurrent": 1.5}, "max_concurrent"),
    ({"rpm": 0}, "rpm"),  # the schema says minimum 1
    ({"expires_at": "4102444800"}, "expires_at"),
    ({"models": "smollm2"}, "models"),
    ({"models": [1]}, "models[0]"),
    ({"name": 7}, "name"),
    ({"budget_usd": 5}, "budget_usd"),  # a project's field: was dropped in silence
]


@pytest.mark.parametrize(("body", "param"), NOT_IN_SCHEMA)
async def test_a_key_body_the_schema_forbids_is_refused(
    http: httpx.AsyncClient, body: dict[str, object], param: str
) -> None:
    """The fuzzer's negative_data_rejection on POST …/api_keys: what the published schema
    forbids, the route refuses (400, OpenAI's error), and what it allows, the route takes."""
    doc = (await http.get("/openapi.json")).json()
    operation = doc["paths"]["/v1/organization/projects/{project_id}/api_keys"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    valid = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    assert not valid.is_valid(body)
    project = (await http.post("/v1/organization/projects", json={"name": "k"})).json()
    r = await http.post(f"/v1/organization/projects/{project['id']}/api_keys", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == param
    fine = {
        "name": "ci",
        "rpm": 60,
        "tpm": 1000,
        "max_concurrent": 2.0,  # an integer to JSON Schema, so to the route too
        "models": ["fake-model"],
        "expires_at": 4102444800,
    }
    assert valid.is_valid(fine)
    r = await http.post(f"/v1/organization/projects/{project['id']}/api_keys", json=fine)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "p", "rpm": "60"},
        {"name": "p", "max_concurent": 2},
        {"name": "p", "budget_usd": "5"},
    ],
)
async def test_a_project_body_the_schema_forbids_is_refused(
    http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    r = await http.post("/v1/organization/projects", json=body)
    assert r.status_code == 400, r.text
    r = await http.post("/v1/organization/projects", json={"name": "p", "budget_usd": 5})
    assert r.status_code == 200 and r.json()["budget_usd"] == 5, r.text


async def test_an_empty_prompt_list_is_refused(http: httpx.AsyncClient) -> None:
    """`"prompt": []` ran no generation and then indexed the first of none: IndexError."""
    r = await http.post("/v1/completions", json={"model": "fake-model", "prompt": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
    r = await http.post("/v1/completions", json={"model": "fake-model", "prompt": ""})
    assert r.status_code == 200, r.text
