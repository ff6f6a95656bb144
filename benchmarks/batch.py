"""The Batch API's row: a 400-request chat batch against the closed-loop 8-stream
throughput of the same corral, and interactive TTFT at one stream while a batch runs
against the idle TTFT. Every request has the same fixed length (EOS forbidden), so
throughput is requests x tokens over the wall time from the batch's creation to its end.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import systems

from corral.bench.loadgen import Target, one_request, percentile, run_level
from corral.bench.prompts import short_prompts

REQUESTS = 400
CLOSED_LOOP_REQUESTS = 64
PAUSE_S = 0.05


def _rows(target: Target, prompts: list[str], max_tokens: int) -> bytes:
    rows = [
        {
            "custom_id": f"b{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": target.model,
                "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                "max_tokens": max_tokens,
                "temperature": 0,
                **target.extra,
            },
        }
        for i in range(REQUESTS)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


async def submit(http: httpx.AsyncClient, target: Target, data: bytes) -> str:
    files = {"file": ("bench.jsonl", data)}
    made = await http.post(
        target.base_url + "/files", data={"purpose": "batch"}, files=files, headers=target.headers
    )
    made.raise_for_status()
    body = {
        "input_file_id": made.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batch = await http.post(target.base_url + "/batches", json=body, headers=target.headers)
    batch.raise_for_status()
    return str(batch.json()["id"])


async def until_done(http: httpx.AsyncClient, target: Target, batch_id: str) -> dict[str, Any]:
    while True:
        r = await http.get(f"{target.base_url}/batches/{batch_id}", headers=target.headers)
        batch: dict[str, Any] = r.json()
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return batch
        await asyncio.sleep(0.2)


async def ttft_p50(target: Target, samples: int, seed: int) -> float:
    values = []
    async with httpx.AsyncClient(timeout=600) as http:
        for prompt in short_prompts(samples, seed=seed):
            await asyncio.sleep(PAUSE_S)
            result = await one_request(http, target, prompt, 2)
            if result.error is None and result.ttft is not None:
                values.append(result.ttft)
    return percentile(values, 50) * 1000


async def batch_row(corral: systems.Running, max_tokens: int, samples: int) -> dict[str, Any]:
    target = corral.target
    prompts = short_prompts(64, seed=7)
    print("  batch: closed loop, 8 streams …", flush=True)
    closed = await run_level(target, prompts, 8, CLOSED_LOOP_REQUESTS, max_tokens)
    data = _rows(target, prompts, max_tokens)
    async with httpx.AsyncClient(timeout=600) as http:
        print(f"  batch: {REQUESTS} requests …", flush=True)
        start = time.perf_counter()
        done = await until_done(http, target, await submit(http, target, data))
        wall = time.perf_counter() - start
        print("  batch: TTFT idle, then with a batch running …", flush=True)
        idle = await ttft_p50(target, samples, seed=8)
        running = await submit(http, target, data)
        await asyncio.sleep(2)  # the batch fills its slots
        busy = await ttft_p50(target, samples, seed=9)
        await http.post(f"{target.base_url}/batches/{running}/cancel", headers=target.headers)
        await until_done(http, target, running)
    completed = int(done["request_counts"]["completed"])
    return {
        "requests": REQUESTS,
        "completed": completed,
        "wall_s": wall,
        "tokens_per_s": completed * max_tokens / wall,
        "closed_loop_8_tokens_per_s": closed.tokens_per_s,
        "closed_loop_errors": closed.errors,
        "ttft_idle_p50_ms": idle,
        "ttft_with_batch_p50_ms": busy,
    }
