"""The embedded model in a child process, driven through the Engine interface: the same
answers, exact counts and errors as in-process; restarts after a crash; stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.catalog.schema import embedded_model_path
from corral.core.config import EngineSettings
from corral.core.errors import CorralError, EngineUnavailableError, InvalidRequestError
from corral.engines import supervisor as supervisor_module
from corral.engines.llamacpp import LlamaCppEngine
from corral.engines.process import LlamaCppProcessEngine
from tests.fakes import local_info

pytestmark = pytest.mark.slow

SETTINGS = EngineSettings(n_ctx=2048, n_parallel=2)
HELLO = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "seed": 1}


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LlamaCppProcessEngine]:
    folder = tmp_path_factory.mktemp("engine")
    engine = LlamaCppProcessEngine(embedded_model_path(), SETTINGS, local_info(SETTINGS), folder)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def test_same_answers_and_counts_as_inline(
    engine: LlamaCppProcessEngine, tmp_path: Path
) -> None:
    inline = LlamaCppEngine(embedded_model_path(), SETTINGS, local_info(SETTINGS))
    await inline.start()
    try:
        assert engine.info == inline.info  # same model, same build: same fingerprint
        body = {**HELLO, "temperature": 0}
        assert (await engine.chat(body))["choices"] == (await inline.chat(body))["choices"]
        assert await engine.count_chat_tokens(HELLO) == await inline.count_chat_tokens(HELLO)
        assert await engine.count_tokens("one two three") == 3
    finally:
        await inline.close()
    chunks = [c async for c in engine.chat_stream(HELLO)]
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 6 and usage["prompt_tokens"] > 0
    vectors = await engine.embed({"input": ["a", "b"]})
    assert len(vectors["data"]) == 2
    assert await engine.slots_busy() == 0


async def test_engine_errors_keep_their_types(engine: LlamaCppProcessEngine) -> None:
    bad_schema = {"type": "json_schema", "json_schema": {"schema": {"type": "bogus"}}}
    with pytest.raises(InvalidRequestError):
        await engine.chat({**HELLO, "response_format": bad_schema})
    with pytest.raises(InvalidRequestError):
        async for _ in engine.chat_stream({**HELLO, "response_format": bad_schema}):
            pass
    with pytest.raises(InvalidRequestError):  # past the context window
        await engine.complete({"prompt": "word " * 3000, "max_tokens": 1})


async def test_crash_fails_the_stream_then_503_then_restart(
    engine: LlamaCppProcessEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that the 503 below is seen before the restart, short for the test.
    monkeypatch.setattr(supervisor_module, "BACKOFF_S", (2.0,))
    first = engine.pid
    assert first is not None
    long = {**HELLO, "max_tokens": 300, "ignore_eos": True}
    chunks = 0
    with pytest.raises(CorralError) as broke:
        async for _ in engine.chat_stream(long):
            chunks += 1
            if chunks == 2:
                os.kill(first, signal.SIGKILL)
    assert chunks >= 2 and broke.value.code == "engine_crashed"
    with pytest.raises(EngineUnavailableError) as caught:
        await engine.chat(HELLO)
    assert caught.value.code == "engine_restarting" and caught.value.status == 503
    deadline = time.monotonic() + 120
    while True:
        try:
            await engine.chat(HELLO)
            break
        except EngineUnavailableError:
            assert time.monotonic() < deadline, "the engine never came back"
            await asyncio.sleep(0.2)
    assert engine.pid != first and engine.supervisor.restarts == 1


async def test_close_stops_the_child(tmp_path: Path) -> None:
    engine = LlamaCppProcessEngine(embedded_model_path(), SETTINGS, local_info(SETTINGS), tmp_path)
    await engine.start()
    pid = engine.pid
    assert pid is not None
    await engine.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
