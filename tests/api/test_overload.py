"""Overload over a fake engine that holds its requests: a whole answer, or a stream before
its first chunk, is cancelled when its client leaves, and a model's queue is bounded with
an immediate 503 past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from corral.app import create_app
from corral.core.config import LimitSettings, Settings
from corral.core.errors import EngineUnavailableError
from tests.fakes import Body, FakeEngine, fake_registry, http_scope, migrated


class HeldEngine(FakeEngine):
    """Each chat call waits until ``release`` is set (slots=4, from FakeEngine)."""

    def __init__(self) -> None:
        super().__init__(context_window=64)
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0

    async def chat(self, body: Body) -> Body:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().chat(body)

    async def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        self.started += 1
        try:
            await self.release.wait()  # a long prompt's prefill: no chunk yet
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        async for chunk in super().chat_stream(body):
            yield chunk


def chat_body(stream: bool = False) -> bytes:
    messages = [{"role": "user", "content": "hi"}]
    return orjson.dumps({"model": "fake-model", "messages": messages, "stream": stream})


async def test_a_whole_answer_stops_when_its_client_leaves(tmp_path: Path) -> None:
    # Issue 21: non-streamed requests whose clients had gone ran to completion (170 s).
    await _leave_while_held(tmp_path, "/v1/chat/completions", chat_body())


STREAMS = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"input": "hi"},
}


@pytest.mark.parametrize("path", STREAMS)
async def test_a_stream_stops_when_its_client_leaves_before_the_first_chunk(
    tmp_path: Path, path: str
) -> None:
    # Seen with Codex CLI: a client that gave up during a 10K-token prefill left the
    # engine prefilling for minutes, since only a started stream listened for it.
    body = orjson.dumps({"model": "fake-model", "stream": True, **STREAMS[path]})
    await _leave_while_held(tmp_path, path, body)


async def _leave_while_held(tmp_path: Path, path: str, body: bytes) -> None:
    engine = HeldEngine()
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry(engine))
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    call = asyncio.create_task(app(http_scope(path), receive, send))
    while not engine.started:  # noqa: ASYNC110 (a test polling a fake's counter)
        await asyncio.sleep(0.01)
    gone.set()
    await asyncio.wait_for(call, 5)
    assert engine.cancelled == 1
    assert app.state.services.admission.in_flight == 0  # its slot is free again


async def test_a_full_queue_is_refused_at_once_with_retry_after(tmp_path: Path) -> None:
    engine = HeldEngine()
    limits = LimitSettings(queue_per_slot=1)  # 4 slots: 8 running or waiting
    app = create_app(migrated(Settings(data_dir=tmp_path, limits=limits)), fake_registry(engine))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        post = lambda: http.post("/v1/chat/completions", content=chat_body())  # noqa: E731
        held = [asyncio.create_task(post()) for _ in range(8)]
        while engine.started < 8:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        refused = await asyncio.wait_for(post(), 2)  # not a wait: refused at once
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "server_overloaded"
        engine.release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200] * 8
        assert (await post()).status_code == 200  # the queue drained


class LoadingEngine(FakeEngine):
    """Refuses as a stream is made, as the engine process does while an adapter loads."""

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:  # type: ignore[override]
        raise EngineUnavailableError("The adapter is loading.", code="model_loading")


async def test_a_stream_the_engine_refuses_as_it_is_made_gives_back_its_slot(
    tmp_path: Path,
) -> None:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry(LoadingEngine()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for _ in range(3):
            r = await http.post("/v1/chat/completions", content=chat_body(stream=True))
            assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
        assert app.state.services.admission.in_flight == 0
