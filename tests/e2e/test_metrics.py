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
    match = re.search(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
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
