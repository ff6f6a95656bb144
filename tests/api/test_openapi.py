"""The OpenAPI document tells the truth: bodies, answers and errors as corral sends them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from corral.app import create_app
from corral.core.config import Settings
from corral.protocol.models import AliasMove, ModelCard
from tests.fakes import fake_registry, migrated

BODILESS = ("/cancel",)  # actions whose POST takes no body, as OpenAI's
STREAMING = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"))
    return create_app(settings, fake_registry()).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def test_every_post_declares_its_body(doc: dict[str, Any]) -> None:
    posts = [(p, op) for m, p, op in operations(doc) if m == "post"]
    assert len(posts) > 15
    for path, op in posts:
        if path.endswith(BODILESS):
            assert "requestBody" not in op, path
            continue
        body = op.get("requestBody")
        assert body and body["required"], path
        content = body["content"]
        if path == "/v1/files":
            assert set(content["multipart/form-data"]["schema"]["required"]) == {"file", "purpose"}
            continue
        ref = content["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], path


def test_chat_body_schema_is_the_wire_model(doc: dict[str, Any]) -> None:
    schema = {"$ref": "#/components/schemas/ChatCompletionRequest"}
    check = validator(doc, schema)
    assert check.is_valid({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert not check.is_valid({"messages": []})  # model is required
    # unknown fields are refused by name (400), the no-op ones OpenAI defines accepted
    hi = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert not check.is_valid({**hi, "bogus": 1})
    assert check.is_valid({**hi, "service_tier": "auto"})


def test_errors_are_declared_as_sent_never_422(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        answers = op["responses"]
        assert "422" not in answers, (method, path)
        schema = answers["4XX"]["content"]["application/json"]["schema"]
        anthropic = {"type": "error", "error": {"type": "x", "message": "m"}}
        openai = {"error": {"message": "m", "type": "t", "param": None, "code": None}}
        sent = anthropic if path.startswith("/v1/messages") else openai
        assert validator(doc, schema).is_valid(sent), (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_content_types_as_sent(doc: dict[str, Any]) -> None:
    event = {"event": "response.created", "data": '{"type": "response.created"}'}
    for path in STREAMING:
        stream = doc["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]
        check = validator(doc, stream["schema"])  # each event, as OpenAPI 3.1 reads it
        assert check.is_valid(event) and check.is_valid({"data": "[DONE]"})
        assert not check.is_valid({"event": "x"})
    content = doc["paths"]["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["application/octet-stream"]
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


def test_alias_history_matches_its_schema(doc: dict[str, Any]) -> None:
    """An alias that pointed nowhere for a while (before its first snapshot, after the
    last shut down) has a move with no snapshot: answered without the field, as
    /v1/models drops nulls, which the schema must allow."""
    card = ModelCard(
        id="a",
        created=0,
        owned_by="o",
        context_window=8,
        capabilities=["chat"],
        alias_history=[AliasMove(since=dt.date(2024, 1, 1), snapshot=None)],
    )
    sent = card.model_dump(mode="json", exclude_none=True)
    assert "snapshot" not in sent["alias_history"][0]
    schema = doc["paths"]["/v1/models/{model_id}"]["get"]["responses"]["200"]["content"]
    check = validator(doc, schema["application/json"]["schema"])
    assert not list(check.iter_errors(sent))


async def test_live_models_list_matches_its_schema(tmp_path: Path) -> None:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry())
    doc = app.openapi()
    schema = doc["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    check = validator(doc, schema["application/json"]["schema"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for params in ({}, {"all": "true"}):
                body = (await http.get("/v1/models", params=params)).json()
                assert not [e.message for e in check.iter_errors(body)]


async def test_reports_need_start_time_and_match_their_schemas(tmp_path: Path) -> None:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry())
    doc = app.openapi()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await http.post("/v1/chat/completions", json={"model": "fake", "messages": []})
            for path, other in (
                ("/v1/organization/costs", ("line_item",)),
                ("/v1/organization/usage/completions", ("batch",)),
                ("/v1/organization/usage/vector_stores", ()),
            ):
                param = doc["paths"][path]["get"]["parameters"][0]
                assert param["name"] == "start_time" and param["required"]
                r = await http.get(path)
                assert r.status_code == 400 and r.json()["error"]["param"] == "start_time"
                schema = doc["paths"][path]["get"]["responses"]["200"]["content"]
                check = validator(doc, schema["application/json"]["schema"])
                for group in ("project_id", *other):
                    params = {"start_time": 0, "group_by": group}
                    r = await http.get(path, params=params)
                    assert r.status_code == 200
                    assert not [e.message for e in check.iter_errors(r.json())]


def test_creates_link_to_what_their_ids_address(doc: dict[str, Any]) -> None:
    """OpenAPI links from a create to the operations its id addresses (what a stateful
    fuzzer and client generators follow), each naming a real operation and its params."""
    by_id = {op["operationId"]: op for _, _, op in operations(doc)}
    linked: dict[str, set[str]] = {}
    for _, path, op in operations(doc):
        for link in op["responses"].get("200", {}).get("links", {}).values():
            target = by_id[link["operationId"]]
            names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert set(link["parameters"]) == names, (path, link)
            linked.setdefault(path, set()).add(link["operationId"])
    for path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/evals", "/v1/evals/{eval_id}/runs"):
        assert path in linked
    for path in ("/v1/batches", "/v1/responses", "/v1/conversations"):
        assert path in linked
    assert "retrieve_file_v1_files__file_id__get" in linked["/v1/files"]


def test_the_key_is_declared_where_it_is_needed(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["x-api-key"]["in"] == "header"
    assert doc["security"] == [{"bearer": []}, {"x-api-key": []}]
    for method, path, op in operations(doc):
        open_probe = path in ("/health", "/ready")
        assert (op.get("security") == []) == open_probe, (method, path)
