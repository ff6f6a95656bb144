"""The engine's prompt cache (``engine.cache_ram_mib``, on by default): a second session
that shares a long prefix with a first one reads it from the cache although other
requests took every slot in between, and says so in its usage (Chat Completions'
``cached_tokens``, Messages' ``cache_read_input_tokens``) and in /metrics."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest

from corral.bench.prompts import long_text
from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

SLOTS = 8  # engine.n_parallel's default: this many other prompts take every slot


def cached_total(live_server: LiveServer) -> float:
    text = httpx.get(live_server.url + "/metrics", timeout=10).text
    lines = [
        line for line in text.splitlines() if line.startswith("corral_prompt_cached_tokens_total")
    ]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_a_second_session_reads_the_shared_prefix_from_the_cache(
    live_server: LiveServer, client: openai.OpenAI
) -> None:
    rng = random.Random(30)
    prefix = "You are an agent with these instructions.\n" + long_text(500, rng)

    def ask(question: str) -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": prefix}, {"role": "user", "content": question}],
            max_tokens=1,
        )

    first = ask("List the files.")
    assert first.usage is not None and first.usage.prompt_tokens > 500

    def other(index: int) -> None:
        text = f"[{index}] " + long_text(120, random.Random(index))
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=1
        )

    with ThreadPoolExecutor(SLOTS + 2) as pool:
        list(pool.map(other, range(SLOTS + 2)))
    before = cached_total(live_server)

    second = ask("Count the lines.")
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 0.9 * first.usage.prompt_tokens, second.usage
    assert cached_total(live_server) - before >= cached

    claude = anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)
    message = claude.messages.create(
        model=MODEL,
        max_tokens=1,
        system=prefix,
        messages=[{"role": "user", "content": "Show the diff."}],
    )
    assert message.usage.cache_read_input_tokens is not None
    assert message.usage.cache_read_input_tokens >= 0.5 * first.usage.prompt_tokens


def test_the_prompts_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Slots saved at shutdown (`engine.saved_prompts_mib`) are restored at start: the
    first session after a restart reads the prefix. (Another configuration reads another
    folder: tests/engines/test_saved_prompts.py.)"""
    data = tmp_path_factory.mktemp("restart")
    prefix = "You are an agent with these instructions.\n" + long_text(500, random.Random(31))

    def session(env: dict[str, str], question: str) -> tuple[int, int]:
        server = LiveServer(data, env=env)
        try:
            server.wait_ready()
            with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
                r = c.chat.completions.create(
                    model=MODEL,
                    messages=[
                        {"role": "system", "content": prefix},
                        {"role": "user", "content": question},
                    ],
                    max_tokens=1,
                )
        finally:
            server.stop()
        assert r.usage is not None and r.usage.prompt_tokens_details is not None
        return r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens or 0

    prompt, cached = session({}, "List the files.")
    assert cached == 0
    assert any(p.stat().st_size > 1 << 20 for p in (data / "prompts").rglob("slot-*.bin"))
    prompt, cached = session({}, "Count the lines.")
    assert cached >= 0.9 * prompt


def tool(name: str, description: str, parameter: str) -> dict[str, object]:
    parameters = {"type": "object", "properties": {parameter: {"type": "string"}}}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def test_an_agents_next_turn_about_another_tool_reads_the_conversation_from_the_cache(
    client: openai.OpenAI,
) -> None:
    """Issue 30: the tools prompt is the same whatever a turn asks, so a turn about
    another tool computes only what it adds (when the prompt held only the tools the
    latest turn named, the cache stopped at the instructions)."""
    system = "You are an agent.\n" + long_text(300, random.Random(31))
    tools = [
        tool("get_weather", "The current weather in a city.", "city"),
        tool("get_stock_price", "The latest trading price of a stock.", "symbol"),
    ]
    messages: list[dict[str, object]] = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": "What is the weather in Oslo? " + long_text(80, random.Random(32)),
        },
    ]

    def turn() -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=tools,
            max_tokens=24,
            temperature=0,  # type: ignore[arg-type]
        )

    first = turn()
    assert first.usage is not None
    messages += [
        {"role": "assistant", "content": "It is sunny in Oslo."},
        {"role": "user", "content": "And the stock price of the symbol ACME?"},
    ]
    second = turn()
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    # The whole first prompt (instructions, tools, the first question) was read again;
    # only the new turn (~30 tokens) and what the first answer's pass left are not.
    # Usage sums a second pass in words, if one ran: compare with the first's prompt.
    assert cached >= first.usage.prompt_tokens - 8, (cached, first.usage.prompt_tokens)


def test_sessions_that_start_together_compute_their_prefix_once(
    client: openai.OpenAI,
) -> None:
    """Three sessions with one never-seen prefix at once: one computes it, the others
    wait for it and read it (engines/prefix_flights.py; without it each computed the
    whole prefix, `cached_tokens` 0). The followers go one at a time: released together
    they landed in different slots, and llama.cpp copies no KV out of a busy slot (seen
    once in a fresh clone: 9.4 s leader, 12.9 s follower with 1,312 cached, 19.1 s
    follower with 0). Each waits for each one ahead of it at most ~15 s for this prefix;
    the follower before it needs well under a second (a one-token answer on a prefix
    already computed)."""
    prefix = "You are an agent with these instructions.\n" + long_text(1100, random.Random(33))

    def session(question: str) -> openai.types.CompletionUsage:
        r = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": prefix}, {"role": "user", "content": question}],
            max_tokens=1,
        )
        assert r.usage is not None
        return r.usage

    with ThreadPoolExecutor(3) as pool:
        usages = list(pool.map(session, ["List the files.", "Count the lines.", "Show the diff."]))
    cached = sorted(
        (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
        for u in usages
    )
    assert usages[0].prompt_tokens > 1000
    assert cached[0] < 100 and cached[1] >= 0.9 * usages[0].prompt_tokens, usages
