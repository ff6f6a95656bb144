"""CPU the gateway spends per request and per token, against the no-work upstream.

    .venv/bin/python benchmarks/gateway_cpu.py --streams 8 --tokens 2 --requests 400

Starts `noop_upstream.py` and a corral gateway in front of it, drives the upstream
directly and then through the gateway with the same load, and prints each one's tok/s
and the CPU its process used (from /proc). With ``--tokens 2`` nearly all of it is per
request (where the no-work 8-stream throughput row loses its 3%); with ``--tokens 400``
it is per token. Attach a profiler to the gateway's pid (printed) for the breakdown,
e.g. ``py-spy record -p PID -r 1000 -f raw -o out.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import systems

from corral.bench.loadgen import run_level
from corral.bench.prompts import short_prompts


async def drive(name: str, r: systems.Running, args: argparse.Namespace) -> None:
    before = systems.cpu_s(r.proc.pid)[0]
    level = await run_level(
        r.target, short_prompts(64, seed=1), args.streams, args.requests, args.tokens
    )
    cpu_ms = (systems.cpu_s(r.proc.pid)[0] - before) * 1000
    tokens = max(1, level.output_tokens)
    print(
        f"{name}: {level.tokens_per_s:.0f} tok/s, {level.errors} errors, "
        f"CPU {cpu_ms / max(1, len(level.results)):.2f} ms a request, "
        f"{cpu_ms / tokens:.3f} ms a token"
    )


async def main(args: argparse.Namespace) -> None:
    logs = Path(tempfile.mkdtemp(prefix="corral-gateway-cpu-"))
    env = {**os.environ, "CORRAL_DATA_DIR": str(logs / "data")}
    upstream = systems.start_noop_upstream(logs / "noop.log")
    gateway = None
    try:
        gateway = systems.start_gateway(env, logs / "gateway.log", upstream, logs)
        print(f"gateway pid {gateway.proc.pid}, logs in {logs}", flush=True)
        for r in (upstream, gateway):
            await run_level(r.target, short_prompts(8, seed=2), 2, 4, 4)  # warm up
        await drive("no-work upstream", upstream, args)
        await drive("corral gateway", gateway, args)
    finally:
        for r in (gateway, upstream):
            if r is not None:
                r.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
