"""`make bench`: corral vs the engine direct vs llama-cpp-python, in one run.

Each system is started alone on the same GGUF, thread count and context, driven by the
same seeded prompts with a fixed output length, then stopped. Results go to
docs/benchmarks.md, docs/benchmarks.png and docs/benchmarks.json; nothing is typed in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import report
import systems
from batch import batch_row
from seam import seam_part
from speculative import speculative_part

from corral.bench.loadgen import (
    LevelResult,
    Target,
    abba_ratios,
    one_request,
    percentile,
    run_level,
)
from corral.bench.prompts import long_prompts, short_prompts
from corral.catalog.schema import resolve_model
from corral.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PAUSE_S = 0.05  # before each request of the TTFT probe
# (system, its reference): the throughput targets compare these, pair by pair. The
# engine in a child process is `corral` or "corral, process engine", whichever ran.
PAIRED = (
    ("corral", "engine direct"),
    ("corral gateway", "engine direct"),
    ("corral", "corral, inline engine"),
    ("corral, process engine", "corral"),
)


@dataclass
class Plan:
    levels: tuple[int, ...] = (1, 2, 4, 8, 16)
    max_tokens: int = 64
    long_max_tokens: int = 16
    long_levels: tuple[int, ...] = (1, 4)

    rounds: int = 2  # each level runs this many times per system, interleaved
    # TTFT at one stream, from its own short requests (see ttft_probe): the levels' few
    # requests at one stream put a p50's standard error near the 2-ms targets.
    ttft_samples: int = 60
    # The gateway against the no-work upstream: only corral's part varies, so a few
    # hundred requests pin its added TTFT to a fraction of a millisecond.
    noop_samples: int = 300
    noop_levels: tuple[int, ...] = (1, 8, 32)
    # The levels the targets compare (1 and 8 streams) run twice as many rounds: their
    # ratios are within a few percent of the bar, and one round moves them by as much.
    target_levels: tuple[int, ...] = (1, 8)
    # Throughput ratios at the target levels, batch against batch (see paired_ratios):
    # one stream's batches vary more and cost less, so they get more pairs.
    pairs: int = 10
    pairs_one_stream: int = 30
    # The engine on one core of its own runs its batches on one thread, and its pairs
    # varied twice as much (0.90 to 1.18 at one stream, a 95% interval of ±3%), so it
    # gets this many times the pairs.
    own_core_pair_factor: int = 2

    def pairs_for(self, concurrency: int) -> int:
        return self.pairs_one_stream if concurrency == 1 else self.pairs

    def requests(self, concurrency: int) -> int:
        return max(8, 2 * concurrency)

    def rounds_for(self, scenario: str, concurrency: int) -> int:
        target = scenario == "short" and concurrency in self.target_levels
        return self.rounds * 2 if target else self.rounds


def level_summary(level: LevelResult, cpu: tuple[float, float]) -> dict[str, Any]:
    """``cpu``: CPU seconds the system's own process and its engine child used."""
    ms = 1000.0
    tokens = max(1, level.output_tokens)
    return {
        "cpu_ms_per_token": cpu[0] * ms / tokens,
        "engine_child_cpu_ms_per_token": cpu[1] * ms / tokens,
        "concurrency": level.concurrency,
        "requests": len(level.results),
        "errors": level.errors,
        "ttft_p50_ms": percentile(level.ttfts, 50) * ms,
        "ttft_p99_ms": percentile(level.ttfts, 99) * ms,
        "itl_p50_ms": percentile(level.itls, 50) * ms,
        "itl_p99_ms": percentile(level.itls, 99) * ms,
        "tokens_per_s": level.tokens_per_s,
        "requests_per_s": level.requests_per_s,
        "output_tokens": level.output_tokens,
        "tokens_per_request": sorted({r.tokens for r in level.results if r.error is None}),
        "errors_sample": [r.error for r in level.results if r.error][:3],
    }


async def prefix_cache(target: Target, seed: int) -> dict[str, float]:
    """TTFT of a first request with a fresh ~1,000-token system prompt, then of a second
    request that shares it with a different question."""
    system = long_prompts(1, seed=seed)[0]
    ttfts = []
    async with httpx.AsyncClient(timeout=600) as http:
        for question in ("Name one color.", "Name one animal."):
            result = await one_request(http, target, f"{system}\n\n{question}", max_tokens=4)
            if result.error or result.ttft is None:
                raise RuntimeError(f"prefix-cache request failed: {result.error}")
            ttfts.append(result.ttft * 1000)
    return {"first_ms": ttfts[0], "second_ms": ttfts[1], "ratio": ttfts[1] / ttfts[0]}


async def paired_ratios(
    ours: systems.Running,
    base: systems.Running,
    c: int,
    pairs: int,
    max_tokens: int,
    exact: bool = True,
) -> list[float]:
    """tok/s of ``ours`` over ``base`` in ABBA pairs of batches of ``c`` streams
    (``loadgen.abba_ratios``), on the same seeded prompts every run."""
    prompts = short_prompts(c, seed=4)
    return await abba_ratios(ours.target, base.target, prompts, max_tokens, pairs, exact)


async def pairs_by_level(
    ours: systems.Running, base: systems.Running, levels: tuple[int, ...], plan: Plan, what: str
) -> dict[str, list[float]]:
    """``paired_ratios`` at each level, keyed by the level as the JSON writes it."""
    ratios = {}
    for c in levels:
        print(f"  tok/s in pairs, {c} stream(s){what} …", flush=True)
        ratios[str(c)] = await paired_ratios(ours, base, c, plan.pairs_for(c), plan.max_tokens)
    return ratios


async def paired_throughput(
    running: dict[str, systems.Running], plan: Plan
) -> dict[str, dict[str, list[float]]]:
    """Per-pair tok/s ratios of each PAIRED system to its reference at the target levels."""
    out: dict[str, dict[str, list[float]]] = {}
    for ours, base in PAIRED:
        if ours not in running or base not in running:
            continue
        out[f"{ours} / {base}"] = await pairs_by_level(
            running[ours], running[base], plan.target_levels, plan, f": {ours} vs {base}"
        )
    return out


DIALECTS = ("responses", "messages")
BATCH_TTFT = 30  # TTFT samples, idle and with a batch running


async def dialect_pairs(corral: systems.Running, plan: Plan) -> dict[str, dict[str, list[float]]]:
    """Streaming tok/s of the Responses and Messages APIs over Chat Completions on the
    same corral, in ABBA pairs at the target levels. Neither dialect can forbid the end
    of sequence (no ``logit_bias``, no ``ignore_eos``), so here chat cannot either: every
    dialect sends the same greedy request to the core, and all three give the same tokens.
    """
    chat = replace(corral, target=replace(corral.target, extra={}))
    out = {}
    for dialect in DIALECTS:
        ours = replace(chat, target=replace(chat.target, dialect=dialect))
        ratios = {}
        for c in plan.target_levels:
            print(f"  tok/s in pairs, {c} stream(s): {dialect} vs chat …", flush=True)
            pairs = plan.pairs_for(c)
            ratios[str(c)] = await paired_ratios(ours, chat, c, pairs, plan.max_tokens, False)
        out[f"corral, {dialect} / corral, chat"] = ratios
    return out


async def ttft_probe(running: dict[str, systems.Running], samples: int) -> dict[str, Any]:
    """Time to first token at one stream: one short request (two tokens) to each system
    in turn, ``samples`` times. Every request gets a prompt no system was sent before, so
    no system finds another's prompt in the shared engine's cache. The order rotates and
    each request starts after a pause: an engine's threads spin for a while after its
    request ends, which slowed whichever system came next (the gateway, after the engine
    direct it fronts: +3 ms in a fixed order)."""
    names = list(running)
    prompts = iter(short_prompts(samples * len(names), seed=3))
    ttfts: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    async with httpx.AsyncClient(timeout=600) as http:
        for i in range(samples):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                await asyncio.sleep(PAUSE_S)
                result = await one_request(http, running[name].target, next(prompts), 2)
                if result.error is None and result.ttft is not None:
                    ttfts[name].append(result.ttft)
                else:
                    errors[name] += 1
    return {
        name: {
            "samples": len(values),
            "errors": errors[name],
            "p50_ms": percentile(values, 50) * 1000,
            "p90_ms": percentile(values, 90) * 1000,
            "values_ms": [round(v * 1000, 3) for v in values],
        }
        for name, values in ttfts.items()
    }


async def gateway_overhead(env: dict[str, str], logs: Path, plan: Plan) -> dict[str, Any]:
    """TTFT of the no-work upstream, direct and behind corral's gateway."""
    print("starting the no-work upstream and a gateway in front of it", flush=True)
    upstream = systems.start_noop_upstream(logs / "noop.log")
    pair = {"no-work upstream": upstream}
    try:
        pair["corral gateway"] = systems.start_gateway(
            env, logs / "gateway-noop.log", upstream, logs, name="gateway-noop"
        )
        for r in pair.values():
            await warm_up(r.target)
        print(f"  TTFT, {plan.noop_samples} requests each …", flush=True)
        out: dict[str, Any] = await ttft_probe(pair, plan.noop_samples)
        # The no-work upstream keeps its pace whatever corral does (a GPU server's way):
        # these ratios are what the gateway's own work costs a stream, up to the
        # concurrency where one gateway process would fall behind.
        out["throughput"] = await pairs_by_level(
            pair["corral gateway"], upstream, plan.noop_levels, plan, ""
        )
        return out
    finally:
        for r in pair.values():
            r.stop()


async def gateway_own_core(env: dict[str, str], logs: Path, plan: Plan) -> dict[str, list[float]]:
    """tok/s of the gateway against the engine direct, with the engine (one thread) alone
    on CPU 0 and the gateway and this client on CPU 1: an upstream on hardware of its
    own, as a GPU server is, with a real engine.

    In the main run the engine's two threads and the gateway share both cores, so every
    token the gateway handles takes CPU from the engine it measures (the engine stalls
    at its threads' barrier while one of them waits for a core)."""
    if len(os.sched_getaffinity(0)) < 2:
        return {}
    print("starting an engine on CPU 0 (1 thread) and a gateway on CPU 1", flush=True)
    own = {**env, "CORRAL_ENGINE__N_THREADS": "1"}
    engine = systems.start_engine_direct(own, logs / "engine-own-core.log")
    pair = {"engine direct": engine}
    cpus = os.sched_getaffinity(0)
    try:
        pair["corral gateway"] = systems.start_gateway(
            own, logs / "gateway-own-core.log", engine, logs, name="gateway-own-core"
        )
        systems.pin(engine.proc.pid, {0})
        systems.pin(pair["corral gateway"].proc.pid, {1})
        os.sched_setaffinity(0, {1})
        for r in pair.values():
            await warm_up(r.target)
        f = plan.own_core_pair_factor
        more = replace(plan, pairs=plan.pairs * f, pairs_one_stream=plan.pairs_one_stream * f)
        return await pairs_by_level(pair["corral gateway"], engine, plan.target_levels, more, "")
    finally:
        os.sched_setaffinity(0, cpus)
        for r in pair.values():
            r.stop()


async def warm_up(target: Target) -> None:
    async with httpx.AsyncClient(timeout=600) as http:
        await one_request(http, target, "Hello", max_tokens=8)


async def drive(
    running: dict[str, systems.Running], plan: Plan
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every level runs on each system in turn (interleaved, so drift in the machine's
    speed hits all systems alike); the systems that are not being driven sit idle."""
    out: dict[str, Any] = {name: {"short": [], "long": []} for name in running}
    for r in running.values():
        await warm_up(r.target)
    short, longs = short_prompts(64, seed=1), long_prompts(8, seed=2)
    steps = [("short", c, short, plan.requests(c), plan.max_tokens) for c in plan.levels]
    steps += [("long", c, longs, max(2, c), plan.long_max_tokens) for c in plan.long_levels]
    for scenario, c, prompts, requests, max_tokens in steps:
        levels: dict[str, list[LevelResult]] = {name: [] for name in running}
        cpu = {name: (0.0, 0.0) for name in running}  # (own process, engine child)
        for round_ in range(plan.rounds_for(scenario, c)):
            for name, r in running.items():
                print(f"  {scenario}, concurrency {c}, round {round_ + 1}: {name} …", flush=True)
                before = systems.cpu_s(r.proc.pid)
                levels[name].append(await run_level(r.target, prompts, c, requests, max_tokens))
                after = systems.cpu_s(r.proc.pid)
                own, child = cpu[name]
                cpu[name] = (own + after[0] - before[0], child + after[1] - before[1])
        for name, parts in levels.items():
            merged = LevelResult(
                c, [x for p in parts for x in p.results], sum(p.wall for p in parts)
            )
            out[name][scenario].append(level_summary(merged, cpu[name]))
    paired = await paired_throughput(running, plan)
    if "corral" in running:
        paired.update(await dialect_pairs(running["corral"], plan))
    print(f"  TTFT at one stream, {plan.ttft_samples} requests per system …", flush=True)
    for name, probe in (await ttft_probe(running, plan.ttft_samples)).items():
        out[name]["ttft"] = probe
    for index, (name, r) in enumerate(running.items()):
        print(f"  prefix cache: {name} …", flush=True)
        out[name]["prefix_cache"] = await prefix_cache(r.target, seed=1000 + index)
    return out, paired


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    peer = "absent"
    if systems.PEER_PYTHON.exists():
        import subprocess

        peer = subprocess.run(
            [str(systems.PEER_PYTHON), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "corral": version("corral"),
        "xllamacpp": version("xllamacpp"),
        "llama_cpp_python": peer,
    }


async def bench(plan: Plan) -> dict[str, Any]:
    settings = Settings()
    spec = resolve_model(settings.model)
    threads, n_ctx = settings.engine.n_threads, settings.engine.n_ctx
    logs = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    env = {**os.environ, "CORRAL_DATA_DIR": str(logs / "data")}
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "model": spec.id,
            "gguf": spec.path.name,
            "threads": threads,
            "n_ctx": n_ctx,
            "n_parallel": settings.engine.n_parallel,
            "isolation": settings.engine.isolation,
            "max_tokens": plan.max_tokens,
            "long_max_tokens": plan.long_max_tokens,
            "rounds": plan.rounds,
            "pairs": plan.pairs,
            "pairs_one_stream": plan.pairs_one_stream,
        },
        "systems": {},
    }
    other = "inline" if settings.engine.isolation == "process" else "process"
    starters = [
        ("corral", lambda: systems.start_corral(env, logs / "corral.log")),
        (
            f"corral, {other} engine",
            lambda: systems.start_corral_isolated(env, logs / f"corral-{other}.log", other),
        ),
        ("engine direct", lambda: systems.start_engine_direct(env, logs / "engine.log")),
        (
            "llama-cpp-python",
            lambda: systems.start_llama_cpp_python(spec.path, threads, n_ctx, logs / "peer.log"),
        ),
        (
            "corral gateway",
            lambda: systems.start_gateway(
                env, logs / "gateway.log", running["engine direct"], logs
            ),
        ),
    ]
    running: dict[str, systems.Running] = {}
    try:
        for name, start in starters:
            print(f"starting {name}", flush=True)
            started = start()  # one at a time, so each ready time is its own
            if started is None:
                print(
                    f"  skipped: {name} is not built. Build it once with `make bench-peer` "
                    "(compiles llama-cpp-python, ~10 minutes).",
                    flush=True,
                )
                results["systems"][name] = None
                continue
            running[name] = started
        data, results["paired_throughput"] = await drive(running, plan)
        if "corral" in running:  # alone on the machine: the others sit idle
            results["batch"] = await batch_row(running["corral"], plan.max_tokens, BATCH_TTFT)
        for name, r in running.items():
            data[name]["ready_s"] = r.ready_s
            data[name]["rss_mb"] = systems.rss_mb(r.proc.pid)
            results["systems"][name] = data[name]
    finally:
        for r in running.values():
            r.stop()
    # After the others stopped: their idle pollers would otherwise be part of it.
    results["speculative"] = await speculative_part(env, logs)
    results["seam"] = await seam_part(env, logs)
    results["gateway_overhead"] = await gateway_overhead(env, logs, plan)
    results["gateway_own_core"] = await gateway_own_core(env, logs, plan)
    return results


async def corral_only(plan: Plan, part: str) -> dict[str, Any]:
    """One part of the benchmark, printed: ``dialects``, ``batch``, ``speculative`` or
    ``seam``."""
    logs = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    env = {**os.environ, "CORRAL_DATA_DIR": str(logs / "data")}
    if part == "seam":  # its own systems and page
        seam = await seam_part(env, logs)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        (ROOT / "docs" / "benchmarks-seam.md").write_text(report.seam_markdown(seam, when))
        return {k: v if k == "api cpu 8" else report.ratio_of_pairs(v) for k, v in seam.items()}
    if part == "speculative":  # its own systems; the report goes to its own page
        spec = await speculative_part(env, logs)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        page = report.speculative_markdown(spec, when)
        (ROOT / "docs" / "benchmarks-speculative.md").write_text(page)
        ratios = {k: report.ratio_of_pairs(v) for k, v in spec.items() if k != "acceptance"}
        return {**ratios, "acceptance": spec.get("acceptance")}
    corral = systems.start_corral(env, logs / "corral.log")
    try:
        await warm_up(corral.target)
        if part == "batch":
            return await batch_row(corral, plan.max_tokens, BATCH_TTFT)
        pairs = await dialect_pairs(corral, plan)
    finally:
        corral.stop()
    return {
        name: {c: report.ratio_of_pairs(r) for c, r in by.items()} for name, by in pairs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer levels, for a smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per level")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument(
        "--only",
        choices=("dialects", "batch", "speculative", "seam"),
        help="one part on corral alone, printed (no report): the dialects' pairs, the batch row",
    )
    args = parser.parse_args()
    if args.only:
        print(json.dumps(asyncio.run(corral_only(Plan(), args.only)), indent=2))
        return
    quick = Plan(
        levels=(1, 8),
        long_levels=(1,),
        rounds=1,
        ttft_samples=20,
        noop_samples=60,
        pairs=2,
        pairs_one_stream=2,
    )
    plan = quick if args.quick else Plan()
    plan.rounds = args.rounds if not args.quick else 1
    results = asyncio.run(bench(plan))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    report.chart(results, args.out / "benchmarks.png")
    (args.out / "benchmarks.md").write_text(report.markdown(results))
    print((args.out / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
