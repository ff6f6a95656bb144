"""Slow clients over a fake engine: a stalled body is 408, a stream nobody reads is cut."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.api.slow import _SendWatch, _Stalled
from corral.app import create_app
from corral.core.config import LimitSettings, Settings
from tests.fakes import FakeEngine, fake_registry, http_scope, migrated

SCOPE = http_scope()


def app_for(tmp_path: Path) -> Any:
    limits = LimitSettings(body_idle_timeout_s=0.3, stream_send_timeout_s=0.3)
    engine = FakeEngine(context_window=4096, reply=" ".join(["word"] * 500))
    return create_app(migrated(Settings(data_dir=tmp_path, limits=limits)), fake_registry(engine))


async def test_a_stalled_body_is_408(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    sent: list[dict[str, Any]] = []
    first = [{"type": "http.request", "body": b'{"model": "fake-', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if first:
            return first.pop()
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(SCOPE, receive, send), 5)
    assert sent[0]["status"] == 408
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "request_timeout"


async def test_a_stream_nobody_reads_is_cut(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "stream": True}
    messages = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]
    bodies = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal bodies
        if message["type"] == "http.response.body":
            bodies += 1
            if bodies > 3:  # the client's buffer is full: it reads nothing more
                await asyncio.Event().wait()

    await asyncio.wait_for(app(SCOPE, receive, send), 5)  # cut, not stuck
    assert bodies == 4
    admission = app.state.services.admission
    for _ in range(100):  # the generation's generator is closed by the loop, soon after
        if admission.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert admission.in_flight == 0  # its slot is free again


async def test_the_bound_is_per_send_not_per_stream() -> None:
    """One timer watches a stream's sends: sends that each return in time go on however
    long the stream runs; the one that hangs is cut ``limit`` after it began."""
    watch = _SendWatch(0.2)
    sent = 0

    async def slow_send(message: dict[str, Any]) -> None:
        nonlocal sent
        await asyncio.sleep(0.05)
        sent += 1

    async def stuck_send(message: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    try:
        for _ in range(10):  # 0.5 s in all, 0.05 s a send
            await watch.send(slow_send, {"type": "http.response.body"})
        assert sent == 10
        started = asyncio.get_running_loop().time()
        with pytest.raises(_Stalled):
            await watch.send(stuck_send, {"type": "http.response.body"})
        assert 0.15 < asyncio.get_running_loop().time() - started < 5
    finally:
        watch.close()


async def test_a_cancel_from_elsewhere_is_not_a_stall() -> None:
    watch = _SendWatch(30)

    async def stuck_send(message: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    task = asyncio.ensure_future(watch.send(stuck_send, {"type": "http.response.body"}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()


async def test_a_cut_that_the_send_turns_into_another_error_is_taken_back() -> None:
    """As ``asyncio.timeout`` does: a send that answers the watch's cancel with an error
    of its own leaves the task's cancel count as it was (anyio's scopes read it)."""
    watch = _SendWatch(0.1)

    async def send_that_raises(message: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionResetError("gone") from None

    async def run() -> int:
        with pytest.raises(ConnectionResetError):
            await watch.send(send_that_raises, {"type": "http.response.body"})
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert await asyncio.ensure_future(run()) == 0
    watch.close()
