"""GPU check: corral in front of vLLM vs vLLM direct, on a machine with an NVIDIA GPU.

Needs `pip install vllm` (and the model's weights reachable by vLLM). Starts
`vllm serve MODEL` itself, then corral with a catalog whose snapshot's upstream is that
vLLM, drives both with the same streaming load (corral.bench) and prints corral's
overhead: TTFT p50 added and the tokens/s ratio, per concurrency level.

    python benchmarks/gpu/check.py --model meta-llama/Llama-3.1-8B-Instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from corral.bench.loadgen import Target, percentile, run_level
from corral.bench.prompts import short_prompts
from corral.engines.supervisor import free_port


def wait(url: str, proc: subprocess.Popen[bytes], timeout: float, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    sys.exit(f"{url}: not ready after {timeout}s")


async def measure(
    target: Target, levels: list[int], max_tokens: int
) -> dict[int, dict[str, float]]:
    prompts = short_prompts(64, seed=1)
    out = {}
    for c in levels:
        r = await run_level(target, prompts, c, max(16, 4 * c), max_tokens)
        out[c] = {
            "ttft_p50_ms": percentile(r.ttfts, 50) * 1000,
            "tok_s": r.tokens_per_s,
            "errors": r.errors,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--vllm-args", default="", help="extra arguments for vllm serve")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="corral-gpu-"))
    key = os.urandom(16).hex()
    vport, cport = free_port(), free_port()
    vllm = subprocess.Popen(
        [
            "vllm",
            "serve",
            args.model,
            "--port",
            str(vport),
            "--api-key",
            key,
            *args.vllm_args.split(),
        ],
        stdout=(work / "vllm.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    corral = None
    try:
        wait(f"http://127.0.0.1:{vport}/v1/models", vllm, 1800, key)
        catalog = work / "catalog.yaml"
        catalog.write_text(
            "version: 1\nfamilies:\n  - id: gpu\n    name: GPU model\n    owner: check\n"
            "    description: vLLM behind corral\n    context_window: 8192\n"
            "    capabilities: [chat]\n    pricing: {input: 0.1, output: 0.2}\n"
            "    snapshots:\n      - id: gpu-2025-01-01\n        stages: {active: 2025-01-01}\n"
            f"        source: {{upstream: {{url: 'http://127.0.0.1:{vport}/v1', "
            f"model: '{args.model}', api_key_env: GPU_CHECK_KEY, max_concurrent: 1024}}}}\n"
        )
        env = {
            **os.environ,
            "CORRAL_DATA_DIR": str(work / "corral"),
            "CORRAL_CATALOG": str(catalog),
            "CORRAL_MODEL": "gpu",
            "GPU_CHECK_KEY": key,
        }
        corral = subprocess.Popen(
            [sys.executable, "-m", "corral", "serve", "--port", str(cport)],
            env=env,
            stdout=(work / "corral.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait(f"http://127.0.0.1:{cport}/ready", corral, 300, None)
        levels = [int(x) for x in args.levels.split(",")]
        extra = {"ignore_eos": True}
        direct = asyncio.run(
            measure(
                Target(f"http://127.0.0.1:{vport}/v1", args.model, key, extra),
                levels,
                args.max_tokens,
            )
        )
        gateway = asyncio.run(
            measure(
                Target(f"http://127.0.0.1:{cport}/v1", "gpu", None, extra), levels, args.max_tokens
            )
        )
        report = {
            c: {
                "vllm": direct[c],
                "corral": gateway[c],
                "ttft_added_ms": gateway[c]["ttft_p50_ms"] - direct[c]["ttft_p50_ms"],
                "tok_s_ratio": gateway[c]["tok_s"] / direct[c]["tok_s"],
            }
            for c in levels
        }
        print(json.dumps(report, indent=2))
    finally:
        for proc in (corral, vllm):
            if proc is not None:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
