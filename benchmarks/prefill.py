"""Prefill: corral against the engine it embeds, reached alone, on never-seen prompts.

Each system is started on the same GGUF with the same settings (threads, window, batch
sizes, slots); each request is a prompt no system has seen (fresh random words, so no
prompt cache or slot reuse helps) with one output token, timed whole. Requests are
interleaved A-B-B-A so drift on this noisy box falls on both. Reports prompt tokens/s per
system and corral / engine per size.

    .venv/bin/python benchmarks/prefill.py --words 1900 7600 --pairs 3 1

Both systems run the embedded model through the 32K catalog (``deploy/smollm2-32k.yaml``,
as ``make run-32k``) so that ~9K tokens fit; ``--catalog ''`` keeps its own 8K window.

And the shared prefix (corral alone): the time to first token of a first agent session
with a never-seen prefix (~9K tokens: instructions and tools), and of a second session
with the same prefix and another question after other requests took every slot (read
from the engine's prompt cache, ``engine.cache_ram_mib``). Results go to
docs/benchmarks-prefill.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import systems

from corral.bench.prompts import long_text

ROOT = Path(__file__).resolve().parent.parent


async def one(http: httpx.AsyncClient, running: systems.Running, prompt: str) -> tuple[float, int]:
    target = running.target
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 1,
        "temperature": 0,
    }
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    started = time.perf_counter()
    r = await http.post(target.base_url + "/chat/completions", json=body, headers=headers)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed, int(r.json()["usage"]["prompt_tokens"])


async def measure(
    corral: systems.Running, engine: systems.Running, words: int, pairs: int
) -> dict[str, Any]:
    rng = random.Random(words)
    rates: dict[str, list[float]] = {"corral": [], "engine": []}
    tokens: list[int] = []
    async with httpx.AsyncClient(timeout=900) as http:
        for _ in range(pairs):
            order = (("corral", corral), ("engine", engine), ("engine", engine), ("corral", corral))
            for name, running in order:
                prompt = f"[{rng.random()}] " + long_text(words, rng) + "\n\nSay yes."
                seconds, count = await one(http, running, prompt)
                rates[name].append(count / seconds)
                tokens.append(count)
    c, e = statistics.median(rates["corral"]), statistics.median(rates["engine"])
    return {
        "words": words,
        "prompt_tokens": int(statistics.median(tokens)),
        "corral_tok_s": round(c, 1),
        "engine_tok_s": round(e, 1),
        "ratio": round(c / e, 3),
        "corral_all": [round(x, 1) for x in rates["corral"]],
        "engine_all": [round(x, 1) for x in rates["engine"]],
    }


async def ttft(http: httpx.AsyncClient, running: systems.Running, system: str, ask: str) -> float:
    target = running.target
    body = {
        "model": target.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": ask}],
        "max_tokens": 1,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {target.api_key}"}
    started = time.perf_counter()
    async with http.stream(
        "POST", target.base_url + "/chat/completions", json=body, headers=headers
    ) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("no token")


async def shared_prefix(corral: systems.Running, words: int, slots: int) -> dict[str, Any]:
    rng = random.Random(-words)
    prefix = "You are a coding agent. Instructions and tools follow.\n" + long_text(words, rng)
    async with httpx.AsyncClient(timeout=900) as http:
        first = await ttft(http, corral, prefix, "List the files.")
        others = [f"[{i}] " + long_text(150, random.Random(i)) for i in range(slots + 2)]
        await asyncio.gather(*(ttft(http, corral, "Be brief.", o) for o in others))
        second = await ttft(http, corral, prefix, "Count the lines of main.py.")
    return {
        "prefix_words": words,
        "first_session_ttft_s": round(first, 2),
        "second_session_ttft_s": round(second, 3),
        "ratio": round(second / first, 4),
    }


async def after_restart(corral: systems.Running, words: int) -> float:
    """The same prefix's first session on a corral started again (slots restored)."""
    prefix = "You are a coding agent. Instructions and tools follow.\n" + long_text(
        words, random.Random(-words)
    )
    async with httpx.AsyncClient(timeout=900) as http:
        return await ttft(http, corral, prefix, "Show the diff of main.py.")


def render(sizes: list[dict[str, Any]], prefix: dict[str, Any], window: str) -> str:
    rows = "\n".join(
        f"| ~{r['prompt_tokens']:,} | {r['corral_tok_s']} | {r['engine_tok_s']} | "
        f"{r['ratio']:.3f} | {len(r['corral_all'])} |"
        for r in sizes
    )
    return f"""# Prefill and the shared prefix (`benchmarks/prefill.py`)

Embedded model ({window}), 2 threads, this 2-core box. Never-seen prompts (fresh
random words), one output token, each request timed whole, corral and the engine alone
interleaved A-B-B-A; medians.

| prompt tokens | corral tok/s | engine alone tok/s | corral / engine | requests each |
| --- | --- | --- | --- | --- |
{rows}

A second agent session: a never-seen prefix of ~{prefix["prefix_words"]} words (the
instructions and tools an agent sends), then {SLOTS_NOTE}, then the same prefix with
another question: time to the first token.

| first session | second session | second / first |
| --- | --- | --- |
| {prefix["first_session_ttft_s"]} s | {prefix["second_session_ttft_s"]} s | {prefix["ratio"]:.4f} |
"""


SLOTS_NOTE = "10 other requests (every slot taken, the first session's among them)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, nargs="+", default=[1900, 7600])
    parser.add_argument("--pairs", type=int, nargs="+", default=[3, 1])
    parser.add_argument("--prefix-words", type=int, default=7600)
    parser.add_argument("--n-ctx", type=int, default=32768)
    parser.add_argument("--catalog", default=str(ROOT / "deploy" / "smollm2-32k.yaml"))
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="corral-prefill-"))
    env = {
        **os.environ,
        "CORRAL_DATA_DIR": str(data / "data"),
        "CORRAL_ENGINE__N_CTX": str(args.n_ctx),
        "CORRAL_LOG_LEVEL": "warning",
    }
    if args.catalog:  # read by corral serve and by engine_direct.py alike
        env["CORRAL_CATALOG"] = args.catalog
    corral = systems.start_corral(env, data / "corral.log")
    engine = systems.start_engine_direct(env, data / "engine.log")
    try:
        pairs = dict(zip(args.words, args.pairs, strict=True))
        results = [asyncio.run(measure(corral, engine, w, pairs[w])) for w in args.words]
        engine.stop()
        prefix = asyncio.run(shared_prefix(corral, args.prefix_words, 8))
        corral.stop()
        corral = systems.start_corral(env, data / "corral-restarted.log")
        again = asyncio.run(after_restart(corral, args.prefix_words))
        prefix["after_restart_ttft_s"] = round(again, 3)
        prefix["restart_ratio"] = round(again / prefix["first_session_ttft_s"], 4)
    finally:
        corral.stop()
        engine.stop()
    print(json.dumps({"sizes": results, "prefix": prefix}, indent=2))
    out = ROOT / "docs" / "benchmarks-prefill.md"
    window = "the 32K catalog" if args.catalog else "its own catalog"
    out.write_text(render(results, prefix, f"{window}, a {args.n_ctx:,}-token window"))


if __name__ == "__main__":
    main()
