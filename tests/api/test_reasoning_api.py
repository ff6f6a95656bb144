"""Reasoning models through the API (fake engine): reasoning apart, counted, budgeted;
`reasoning_effort` refused for other models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import orjson
import pytest

from corral.app import create_app
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec, load_catalog
from corral.core.config import Settings
from tests.fakes import FakeEngine

CATALOG = """\
families:
  - id: thinker
    name: Thinker
    owner: test
    description: A reasoning model.
    context_window: 4096
    capabilities: [chat, completions, reasoning]
    pricing: {input: 1, output: 2}
    snapshots:
      - id: thinker-2025-01-20
        stages: {active: 2025-01-20}
        source: {path: m.gguf}
  - id: plain
    name: Plain
    owner: test
    description: Not a reasoning model.
    context_window: 4096
    capabilities: [chat, completions]
    pricing: {input: 1, output: 2}
    snapshots:
      - id: plain-2025-01-20
        stages: {active: 2025-01-20}
        source: {path: m.gguf}
"""
REPLY = "<think>\nsix times seven is forty two\n</think>\n\nThe answer is 42."
engines: list[FakeEngine] = []


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "c.yaml").write_text(CATALOG)
    catalog = load_catalog(tmp_path / "c.yaml", shipped=False, today=lambda: date(2026, 1, 1))

    def factory(spec: ModelSpec) -> FakeEngine:
        engines.append(FakeEngine(context_window=4096, reply=REPLY))
        return engines[-1]

    engines.clear()
    app = create_app(Settings(data_dir=tmp_path / "data"), ModelRegistry(catalog, factory))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "6*7?"}], **extra}


async def test_reasoning_apart_and_counted(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/chat/completions",
        json=chat("thinker", reasoning_effort="low", max_completion_tokens=200),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "The answer is 42."
    assert message["reasoning_content"] == "six times seven is forty two"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 6
    sent = engines[-1].bodies[-1]
    assert sent["thinking_budget_tokens"] == 150  # low (1024) capped at 3/4 of 200
    assert sent["max_tokens"] == 200 and "reasoning_effort" not in sent


async def test_reasoning_streamed_as_delta(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/chat/completions",
        json=chat("thinker", stream=True, stream_options={"include_usage": True}),
    )
    chunks = [
        orjson.loads(e.removeprefix("data: "))
        for e in r.text.split("\n\n")
        if e.startswith("data: {")
    ]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    thinking = "".join(d.get("reasoning_content", "") for d in deltas)
    answer = "".join(d.get("content") or "" for d in deltas)
    assert thinking.split() == "six times seven is forty two".split()
    assert answer.strip() == "The answer is 42."
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert engines[-1].bodies[-1]["thinking_budget_tokens"] == 4096  # medium by default


async def test_non_reasoning_model_refuses_effort(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/chat/completions", json=chat("plain", reasoning_effort="high"))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "reasoning_effort" and error["code"] == "unsupported_parameter"
    r = await http.post("/v1/chat/completions", json=chat("plain"))
    assert "reasoning_content" not in r.json()["choices"][0]["message"]
    r = await http.post("/v1/chat/completions", json=chat("thinker", reasoning_effort="max"))
    assert r.status_code == 400 and r.json()["error"]["param"] == "reasoning_effort"


async def test_responses_return_reasoning_items_sealed_for_stateless_clients(
    http: httpx.AsyncClient,
) -> None:
    body = {"model": "thinker", "input": "6*7?", "store": False}
    plain = (await http.post("/v1/responses", json=body)).json()
    reasoning, message = plain["output"]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"] is None
    assert "forty two" in reasoning["content"][0]["text"]
    assert message["content"][0]["text"] == "The answer is 42."
    sealed = await http.post(
        "/v1/responses", json={**body, "include": ["reasoning.encrypted_content"]}
    )
    item = sealed.json()["output"][0]
    token = item["encrypted_content"]
    assert token and "forty" not in token
    # Replayed as a stateless client does: accepted as sent, refused once altered.
    history = [
        {"role": "user", "content": "6*7?"},
        item,
        {"role": "assistant", "content": "The answer is 42."},
        {"role": "user", "content": "And 6*8?"},
    ]
    again = await http.post("/v1/responses", json={**body, "input": history})
    assert again.status_code == 200, again.text
    altered = {
        **item,
        "encrypted_content": token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:],
    }
    history[1] = altered
    refused = await http.post("/v1/responses", json={**body, "input": history})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input[1].encrypted_content"


async def test_streamed_reasoning_items_are_sealed_too(http: httpx.AsyncClient) -> None:
    body = {
        "model": "thinker",
        "input": "6*7?",
        "stream": True,
        "include": ["reasoning.encrypted_content"],
    }
    text = (await http.post("/v1/responses", json=body)).text
    events = [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert "response.reasoning_text.delta" in kinds
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["type"] == "reasoning" and done["item"]["encrypted_content"]
    assert events[-1]["type"] == "response.completed"


def message(model: str, **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "6*7?"}],
        **extra,
    }


async def test_messages_return_thinking_blocks_signed(http: httpx.AsyncClient) -> None:
    enabled = {"type": "enabled", "budget_tokens": 1024}
    r = await http.post("/v1/messages", json=message("thinker", thinking=enabled))
    assert r.status_code == 200, r.text
    thinking, text = r.json()["content"]
    assert thinking["type"] == "thinking" and "forty two" in thinking["thinking"]
    assert thinking["signature"] and "forty" not in thinking["signature"]
    assert text["type"] == "text" and text["text"].strip() == "The answer is 42."
    assert engines[-1].bodies[-1]["thinking_budget_tokens"] == 1024  # low
    # Replayed as Claude Code does: accepted with its signature, refused once altered.
    turns = [
        {"role": "user", "content": "6*7?"},
        {"role": "assistant", "content": [thinking, text]},
        {"role": "user", "content": "And 6*8?"},
    ]
    again = await http.post("/v1/messages", json=message("thinker", messages=turns))
    assert again.status_code == 200, again.text
    token = thinking["signature"]
    turns[1]["content"] = [{**thinking, "signature": token[:-6] + "AAAAA" + token[-1:]}, text]
    refused = await http.post("/v1/messages", json=message("thinker", messages=turns))
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"


async def test_messages_stream_thinking_and_omit_it_when_asked(http: httpx.AsyncClient) -> None:
    adaptive = {"type": "adaptive", "display": "omitted"}
    body = message("thinker", thinking=adaptive, output_config={"effort": "high"}, stream=True)
    text = (await http.post("/v1/messages", json=body)).text
    events = [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-1] == "message_stop"
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert "thinking_delta" not in deltas and "signature_delta" in deltas  # omitted: signed
    assert engines[-1].bodies[-1]["thinking_budget_tokens"] == 1536  # high, 3/4 of 2048
    shown = (await http.post("/v1/messages", json={**body, "thinking": {"type": "adaptive"}})).text
    assert '"thinking_delta"' in shown and "forty" in shown


async def test_messages_thinking_on_other_models(http: httpx.AsyncClient) -> None:
    enabled = {"type": "enabled", "budget_tokens": 1024}
    r = await http.post("/v1/messages", json=message("plain", thinking=enabled))
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    # What agents send every model: a no-op where there is no reasoning.
    adaptive = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}
    r = await http.post("/v1/messages", json=message("plain", **adaptive))
    assert r.status_code == 200, r.text
    assert "thinking_budget_tokens" not in engines[-1].bodies[-1]
