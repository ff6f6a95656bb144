"""corral's own cost per token on a held-out workload, against the engine alone.

The main run's pairs use greedy 64-token answers, which a cache and n-gram drafts can
flatter. This part uses answers the engine has to sample: 128 tokens at temperature 0.8,
each request seeded from its prompt (so every system gets the same seeds, and no two
requests the same), at 1, 8 and 16 streams; plus the main run's greedy load at 16
streams. Three systems resident at once, batches interleaved ABBA:

- corral with speculation off, against the engine alone (no speculation): what corral's
  API process (auth, metering, the event seam, SSE) costs the engine it shares the
  cores with;
- corral with its default speculation against the same engine: what a user gets.

And what corral's API process spends per token, read from /proc around batches of the
8-stream sampled workload (speculation off): CPU seconds per 1,000 streamed tokens, and
that as a share of what its engine child spent on the same tokens.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import systems

from corral.bench.loadgen import Target, abba_ratios, run_level
from corral.bench.prompts import short_prompts

PAIRS = {1: 12, 8: 6, 16: 4}
SAMPLED = {"temperature": 0.8}
TOKENS = 128
GREEDY_TOKENS = 64
CPU_BATCHES = 6


def _sampled(target: Target) -> Target:
    return replace(target, extra={**target.extra, **SAMPLED}, seed_per_prompt=True)


async def seam_part(env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Ratio lists keyed "<workload> <streams>, speculation <off|default>"."""
    off_env = {
        **env,
        "CORRAL_DATA_DIR": str(Path(env["CORRAL_DATA_DIR"]).with_name("data-seam-off")),
        "CORRAL_ENGINE__SPECULATIVE": "off",
    }
    engine_env = {**env, "CORRAL_ENGINE__SPECULATIVE": "off"}
    on_env = {**env, "CORRAL_DATA_DIR": str(Path(env["CORRAL_DATA_DIR"]).with_name("data-seam"))}
    off = systems.start_corral(off_env, logs / "seam-off.log")
    on = systems.start_corral(on_env, logs / "seam-default.log")
    engine = systems.start_engine_direct(engine_env, logs / "seam-engine.log")
    out: dict[str, Any] = {}
    try:
        for c in (1, 8, 16):
            prompts = short_prompts(c, seed=31 + c)
            for name, corral in (("off", off), ("default", on)):
                print(f"  seam: sampled, {c} stream(s), speculation {name} …", flush=True)
                out[f"sampled {c}, speculation {name}"] = await abba_ratios(
                    _sampled(corral.target),
                    _sampled(engine.target),
                    prompts,
                    TOKENS,
                    PAIRS[c],
                    True,
                )
        print("  seam: greedy, 16 streams, speculation off …", flush=True)
        out["greedy 16, speculation off"] = await abba_ratios(
            off.target, engine.target, short_prompts(16, seed=4), GREEDY_TOKENS, PAIRS[16], True
        )
        print("  seam: API CPU per token, 8 streams, speculation off …", flush=True)
        out["api cpu 8"] = await api_cpu(off, short_prompts(8, seed=39))
    finally:
        for r in (off, on, engine):
            r.stop()
    return out


async def api_cpu(corral: systems.Running, prompts: list[str]) -> dict[str, float]:
    """CPU seconds per 1,000 streamed tokens in corral's API process and in its engine
    child, over ``CPU_BATCHES`` batches of one stream per prompt (idle pollers included:
    they run beside the engine as much as the streams do)."""
    api0, child0 = systems.cpu_s(corral.proc.pid)
    tokens = 0
    for _ in range(CPU_BATCHES):
        n = len(prompts)
        level = await run_level(_sampled(corral.target), prompts, n, n, TOKENS)
        tokens += level.output_tokens
    api1, child1 = systems.cpu_s(corral.proc.pid)
    per = 1000 / max(1, tokens)
    return {"api_s": (api1 - api0) * per, "engine_s": (child1 - child0) * per}
