"""Two corral processes fronting a third: a catalog snapshot served by an upstream pool of
two replicas, driven with the openai client."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from corral.bench.prompts import long_text
from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

GATEWAY_MODEL = "gw-model"
SNAPSHOT = "gw-model-2025-01-01"


def gateway_catalog(folder: Path, replicas: list[LiveServer]) -> Path:
    urls = ", ".join(f'"{r.url}/v1"' for r in replicas)
    path = folder / "gateway.yaml"
    path.write_text(
        f"""version: 1
families:
  - id: {GATEWAY_MODEL}
    name: Gateway model
    owner: corral-tests
    description: The embedded model, served by a pool of two corral replicas.
    context_window: 8192
    capabilities: [chat, completions]
    pricing: {{input: 0.1, cached_input: 0.05, output: 0.2}}
    # affinity: sessions with one system prompt go to one replica, whose cache holds it.
    snapshots:
      - id: {SNAPSHOT}
        stages: {{active: 2025-01-01}}
        source:
          upstream: {{urls: [{urls}], model: {MODEL}, affinity: true}}
"""
    )
    return path


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, list[LiveServer]]]:
    base = tmp_path_factory.mktemp("cluster")
    # One replica runs llama.cpp inside the API (engine.isolation=inline), the other in
    # its child process (the default): both modes serve behind the gateway.
    isolation = ({"CORRAL_ENGINE__ISOLATION": "inline"}, {})
    replicas = [LiveServer(base / f"replica{i}", env=isolation[i]) for i in range(2)]
    servers = list(replicas)
    try:
        for r in replicas:
            r.wait_ready()
        env = {
            "CORRAL_CATALOG": str(gateway_catalog(base, replicas)),
            "CORRAL_MODEL": GATEWAY_MODEL,
        }
        gateway = LiveServer(base / "gateway", env=env)
        servers.append(gateway)
        gateway.wait_ready()
        yield gateway, replicas
    finally:
        for s in {*servers, *replicas}:  # a replica may have been replaced by a test
            s.stop()


def served_requests(server: LiveServer) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(
        float(v) for v in re.findall(r"^corral_requests_total\{[^}]*\} ([0-9.]+)$", text, re.M)
    )


def replica_healthy(gateway: LiveServer, replica: LiveServer) -> bool:
    text = httpx.get(gateway.url + "/metrics", timeout=5).text
    pattern = rf'^corral_upstream_healthy\{{[^}}]*url="{re.escape(replica.url)}/v1"[^}}]*\}} 1\.0$'
    return re.search(pattern, text, re.M) is not None


def test_streaming_passes_through_with_usage_and_snapshot(
    cluster: tuple[LiveServer, list[LiveServer]],
) -> None:
    gateway, _ = cluster
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=GATEWAY_MODEL,
        messages=[{"role": "user", "content": "Count to ten."}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert {c.model for c in chunks} == {SNAPSHOT}
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 12 and usage.prompt_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    plain = client.chat.completions.create(
        model=GATEWAY_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert plain.model == SNAPSHOT and plain.usage and plain.usage.completion_tokens <= 3


def test_the_upstreams_cached_tokens_pass_through(
    cluster: tuple[LiveServer, list[LiveServer]],
) -> None:
    """A second session with an agent's prefix reads it from the replica's cache, and the
    gateway says so as the replica does (vLLM's prefix caching reports the same field):
    Chat Completions whole and streamed, and Messages' cache_read_input_tokens."""
    gateway, _ = cluster
    prefix = "You are an agent with these instructions.\n" + long_text(500, random.Random(41))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)

    def messages(question: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": prefix}, {"role": "user", "content": question}]

    first = client.chat.completions.create(
        model=GATEWAY_MODEL, messages=messages("List the files."), max_tokens=1
    )
    assert first.usage is not None and first.usage.prompt_tokens > 500
    second = client.chat.completions.create(
        model=GATEWAY_MODEL, messages=messages("Count the lines."), max_tokens=1
    )
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert (second.usage.prompt_tokens_details.cached_tokens or 0) >= 500, second.usage
    stream = client.chat.completions.create(
        model=GATEWAY_MODEL,
        messages=messages("Show the diff."),
        max_tokens=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage][-1]
    assert usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens_details.cached_tokens or 0) >= 500, usage
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    message = claude.messages.create(
        model=GATEWAY_MODEL,
        max_tokens=1,
        system=prefix,
        messages=[{"role": "user", "content": "Run the tests."}],
    )
    assert (message.usage.cache_read_input_tokens or 0) >= 400, message.usage


async def one(client: openai.AsyncOpenAI) -> tuple[str, bool]:
    outcome, started, _ = await one_with_error(client)
    return outcome, started


async def one_with_error(client: openai.AsyncOpenAI) -> tuple[str, bool, str]:
    """("ok" or "failed", whether output arrived, the error when one came)."""
    started = False
    try:
        stream = await client.chat.completions.create(
            model=GATEWAY_MODEL,
            messages=[{"role": "user", "content": "Write a story."}],
            max_tokens=24,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            if chunk.choices:
                started = True
        return "ok", started, ""
    except openai.APIError as exc:
        return "failed", started, repr(exc)


async def test_replica_death_under_16_streams_and_recovery(
    cluster: tuple[LiveServer, list[LiveServer]], tmp_path: Path
) -> None:
    gateway, replicas = cluster
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    doomed = replicas[0]
    tasks = [asyncio.create_task(one_with_error(client)) for _ in range(16)]
    await asyncio.sleep(0.8)
    doomed.proc.kill()
    later = [asyncio.create_task(one_with_error(client)) for _ in range(8)]
    results = await asyncio.gather(*tasks, *later)
    assert not [r for r in results if r[:2] == ("failed", False)], results
    assert all(r[:2] == ("ok", True) for r in results[16:]), results
    back = LiveServer(tmp_path / "back", port=doomed.port)
    replicas[0] = back
    await asyncio.to_thread(back.wait_ready)
    # Re-admission is the pool's health check (every second, a probe of up to 2 s): on a
    # quiet box a few seconds. The bound is what a box shared with other work needs (one
    # run saw 20 s pass), waited on the gateway's own word before traffic is counted.
    deadline = time.monotonic() + 60
    while not replica_healthy(gateway, back):
        assert time.monotonic() < deadline, "the pool never took the replica back"
        await asyncio.sleep(0.5)
    deadline = time.monotonic() + 60
    while served_requests(back) == 0:
        assert time.monotonic() < deadline, "the pool never sent traffic to the replica again"
        await asyncio.gather(*(one(client) for _ in range(4)))
