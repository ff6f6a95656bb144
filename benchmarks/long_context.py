"""Long-context decode: flash attention and the KV cache's type at 8K and 20K depth.

For each engine setting (``engine.flash_attn`` and ``engine.kv_cache_type``) corral is
started alone with the embedded model's 32K catalog (``deploy/smollm2-32k.yaml``, as
``make run-32k``), speculation off (a draft would hide the attention's cost per token),
and one session is measured on one stream:

- a never-seen ~8K-token prompt: its prefill (time to the first token) and then decode
  of 64 tokens at that depth (tokens after the first over the time after the first);
- the same prompt grown to ~20K tokens (the first 8K read from the slot): prefill of the
  ~12K new tokens, decode at 20K;
- an agent's turn on that 20K prefix: ~100 new tokens, time to the first token.

The engine child's resident memory is read after. Quality at each setting is the
tool-use eval (``corral eval run tool-use``, 42 items, greedy) on the same server.

    .venv/bin/python benchmarks/long_context.py            # every setting, ~30 minutes
    .venv/bin/python benchmarks/long_context.py --settings on/f16 --no-eval

Results: docs/benchmarks-long-context.md (and JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
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
SETTINGS = ("off/f16", "on/f16", "on/q8_0")
OUTPUT_TOKENS = 64
# A setting whose 8K prefill takes this many times the fastest so far is not taken on to
# 20K (on this box q8_0 took 3.1x: its 20K step alone would have taken ~15 minutes).
SKIP_DEPTH_AFTER = 2.0


def stream(http: httpx.Client, corral: systems.Running, text: str, n: int) -> dict[str, Any]:
    """One streamed answer of exactly ``n`` tokens: first-token time and decode rate."""
    target = corral.target
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": n,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **target.extra,
    }
    headers = {"Authorization": f"Bearer {target.api_key}"}
    started = time.perf_counter()
    first = last = 0.0
    usage: dict[str, Any] = {}
    with http.stream(
        "POST", target.base_url + "/chat/completions", json=body, headers=headers
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                last = time.perf_counter() - started
                first = first or last
    out = usage.get("completion_tokens", 0)
    return {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        "ttft_s": round(first, 3),
        "decode_tok_s": round((out - 1) / (last - first), 1) if out > 1 and last > first else None,
    }


def prompts() -> tuple[str, str, str]:
    """~8K, the same grown to ~20K, and that with ~100 tokens more (an agent's turn)."""
    rng = random.Random(20)
    eight = long_text(6100, rng)
    twenty = eight + " " + long_text(10800, rng)
    ask = "\n\nWrite a long story that uses these words."
    turn = twenty + "\n\n" + long_text(70, rng)
    return eight + ask, twenty + ask, turn + ask


def tool_use_eval(corral: systems.Running, env: dict[str, str], out: Path) -> dict[str, Any]:
    url = corral.target.base_url.removesuffix("/v1")
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "corral",
            "eval",
            "run",
            "tool-use",
            "--model",
            corral.target.model,
            "--url",
            url,
            "--api-key",
            corral.target.api_key,
            "--output",
            str(out),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    run = json.loads(out.read_text())
    items = [i for r in run.get("runs", [run]) for i in r.get("output_items", [])]
    passed = sum(1 for i in items if i.get("status") == "pass")
    return {"passed": passed, "items": len(items), "eval_s": round(time.perf_counter() - started)}


def measure(setting: str, data: Path, run_eval: bool, fastest_8k: float) -> dict[str, Any]:
    flash, kv = setting.split("/")
    env = {
        **os.environ,
        "CORRAL_DATA_DIR": str(data / setting.replace("/", "-")),
        "CORRAL_ENGINE__N_CTX": "32768",
        "CORRAL_ENGINE__FLASH_ATTN": flash,
        "CORRAL_ENGINE__KV_CACHE_TYPE": kv,
        "CORRAL_ENGINE__SPECULATIVE": "off",
        "CORRAL_ENGINE__SAVED_PROMPTS_MIB": "0",
        "CORRAL_LOG_LEVEL": "warning",
    }
    catalog = ["--catalog", str(ROOT / "deploy" / "smollm2-32k.yaml")]
    log = data / f"corral-{flash}-{kv}.log"
    corral = systems.start_corral(env, log, catalog)
    result: dict[str, Any] = {"flash_attn": flash, "kv_cache_type": kv}
    try:
        eight, twenty, turn = prompts()
        with httpx.Client(timeout=1800) as http:
            result["at_8k"] = stream(http, corral, eight, OUTPUT_TOKENS)
            print(json.dumps(result), flush=True)
            if result["at_8k"]["ttft_s"] > SKIP_DEPTH_AFTER * fastest_8k:
                # Already out of the running at 8K; its 20K would take a quarter hour.
                result["skipped_20k"] = True
            else:
                result["at_20k"] = stream(http, corral, twenty, OUTPUT_TOKENS)
                print(json.dumps(result), flush=True)
                result["turn_at_20k"] = stream(http, corral, turn, 1)
        result["engine_rss_mb"] = round(systems.engine_rss_mb(corral.proc.pid))
        if run_eval:
            result["tool_use"] = tool_use_eval(corral, env, data / f"eval-{flash}-{kv}.jsonl")
        print(json.dumps(result), flush=True)
    finally:
        corral.stop()
    return result


def render(results: list[dict[str, Any]], commit: str) -> str:
    def rate(r: dict[str, Any], at: str) -> str:
        v = r[at]["decode_tok_s"]
        return f"{v:.1f}" if v else "-"

    def deep(r: dict[str, Any]) -> str:
        if r.get("skipped_20k"):
            return "not run (8K prefill past 2x the fastest) | | | | | |"
        new = r["at_20k"]["prompt_tokens"] - r["at_20k"]["cached_tokens"]
        turn = r["turn_at_20k"]["prompt_tokens"] - r["turn_at_20k"]["cached_tokens"]
        return (
            f"{r['at_20k']['prompt_tokens']:,} | {new:,} | {r['at_20k']['ttft_s']:.1f} | "
            f"{rate(r, 'at_20k')} | "
            f"{turn:,} | {r['turn_at_20k']['ttft_s']:.2f} |"
        )

    rows = "\n".join(
        f"| {r['flash_attn']} | {r['kv_cache_type']} | {r['at_8k']['prompt_tokens']:,} | "
        f"{r['at_8k']['ttft_s']:.1f} | {rate(r, 'at_8k')} | {deep(r)} "
        f"{r['engine_rss_mb']:,} | "
        + (f"{r['tool_use']['passed']}/{r['tool_use']['items']} |" if "tool_use" in r else "- |")
        for r in results
    )
    return f"""# Long-context decode (`benchmarks/long_context.py`)

Embedded model with the 32K catalog (`deploy/smollm2-32k.yaml`), 2 engine threads,
speculation off, one stream, this 2-core box, at {commit}. Per setting a fresh server:
a never-seen ~8K-token prompt (prefill = time to its first token, then 64 tokens decoded
at that depth), the same prompt grown to ~20K (its first 8K read from the slot; only the
new tokens computed), then an agent's turn adding ~100 tokens to the 20K prefix. Engine
RSS after the three; the tool-use eval (42 items, greedy) on the same server.

| flash_attn | kv_cache_type | 8K prompt | 8K prefill (s) | decode at 8K (tok/s) | 20K prompt | new tokens | their prefill (s) | decode at 20K (tok/s) | turn: new tokens | turn: first token (s) | engine RSS (MB) | tool-use eval |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-long-context.md")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="corral-long-context-"))
    results: list[dict[str, Any]] = []
    for setting in args.settings:
        fastest = min((r["at_8k"]["ttft_s"] for r in results), default=float("inf"))
        results.append(measure(setting, data, not args.no_eval, fastest))
    print(json.dumps(results, indent=2))
    commit = os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip()
    args.out.write_text(render(results, commit))


if __name__ == "__main__":
    main()
