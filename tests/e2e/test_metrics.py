"""Per-request timings reach Prometheus /metrics from a real streamed request."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow


def sample(text: str, name: str, missing: float | None = None) -> float:
    """A sample's value; labelled series only appear after their first observation."""
    match = re.search(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    if match is None and missing is not None:
        return missing
    assert match, name
    return float(match.group(1))


def test_stream_timings_in_metrics(client: openai.OpenAI, live_server: LiveServer) -> None:
    before = httpx.get(live_server.url + "/metrics").text
    ttft_before = sample(before, "corral_ttft_seconds_count", missing=0)
    itl_before = sample(before, "corral_itl_seconds_count", missing=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=10,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    pieces = sum(1 for c in stream if c.choices and c.choices[0].delta.content)
    after = httpx.get(live_server.url + "/metrics").text
    assert sample(after, "corral_ttft_seconds_count") == ttft_before + 1
    assert sample(after, "corral_itl_seconds_count") == itl_before + pieces - 1
    assert sample(after, "corral_prefill_seconds_count") >= 1
    assert sample(after, "corral_queue_seconds_count") >= 1
    for gauge in ("corral_engine_slots_busy", "corral_queue_depth", "corral_requests_in_flight"):
        assert sample(after, gauge) >= 0


def test_a_settled_request_adds_its_cost(client: openai.OpenAI, live_server: LiveServer) -> None:
    import time

    before = sample(httpx.get(live_server.url + "/metrics").text, "corral_cost_usd_total", 0)
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5
    )
    assert answer.usage is not None and answer.usage.total_tokens > 0
    # Settlement runs in a task after the response: its charge lands a moment later.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = sample(httpx.get(live_server.url + "/metrics").text, "corral_cost_usd_total", 0)
        if after > before:
            break
        time.sleep(0.05)
    price = client.models.retrieve(MODEL).model_extra["pricing"]  # USD per 1M tokens
    details = answer.usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0  # the prompt cache's share
    expected = (
        (answer.usage.prompt_tokens - cached) * price["input"]
        + cached * price["cached_input"]
        + answer.usage.completion_tokens * price["output"]
    ) / 1e6
    assert expected > 0
    assert after - before == pytest.approx(expected, rel=1e-6)
