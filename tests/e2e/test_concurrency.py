"""Concurrent streams, and cancellation when a client goes away."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow


async def one_stream(aclient: openai.AsyncOpenAI, i: int) -> tuple[int, str, int]:
    stream = await aclient.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Say the number {i}."}],
        max_tokens=12,
        seed=i,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    ids, text, usage = set(), "", 0
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage:
            usage = chunk.usage.completion_tokens
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert len(ids) == 1  # every chunk belongs to this request
    return i, text, usage


async def test_sixteen_concurrent_streams(aclient: openai.AsyncOpenAI) -> None:
    results = await asyncio.gather(*(one_stream(aclient, i) for i in range(16)))
    assert [r[0] for r in results] == list(range(16))
    for _, text, usage in results:
        assert text
        assert usage == 12


def slots_busy(server: LiveServer) -> int:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(r"corral_engine_slots_busy\{[^}]*\} (\d+)", text)
    assert match, text
    return int(match.group(1))


def test_disconnect_frees_the_slot(live_server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 3000,
        "stream": True,
        "ignore_eos": True,
    }
    url = live_server.url + "/v1/chat/completions"
    with httpx.Client(timeout=30) as http, http.stream("POST", url, json=body) as r:
        lines = r.iter_lines()
        for _ in range(10):
            next(lines)
        assert slots_busy(live_server) == 1
    # the response and its connection are closed: the client is gone
    gone_at = time.monotonic()
    while slots_busy(live_server) != 0:
        # 3000 tokens take half a minute or more here: 5 s tells a stopped generation from
        # one that runs on, without failing when a loaded CI box is slow to report it.
        assert time.monotonic() - gone_at < 5.0, "generation kept running after disconnect"
        time.sleep(0.02)
