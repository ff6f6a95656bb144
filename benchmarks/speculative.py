"""Speculative decoding and corral's per-token cost, against the engine alone with its
defaults (no speculation), every system resident and batches interleaved ABBA.

- copy: one stream, greedy, three requests whose answer repeats the prompt (a ~300-token
  code block with one literal changed, a JSON document with one field changed, a
  ~700-token text repeated); every pair gets a fresh variant, so neither side meets an
  answer it produced before. corral's default against the engine; and corral given
  the original code as ``prediction`` on the code edit. Compared by output speed (first
  token to last, see ``_one``), with the end-to-end ratio beside it.
- prose at one and eight streams (greedy, natural length): corral's default against
  the engine, where drafts rarely help.
- long: 300-token answers at one stream with the prompt cached, corral with speculation
  off against the engine (corral's own per-token cost).
- sampled: 128 tokens at temperature 0.8 with a seed, eight streams, corral's default
  against the engine.
Natural lengths (no ``ignore_eos``) where drafts are on: past the end a small model
loops, and loops are what n-gram drafts predict best, which would flatter the drafter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import systems
from prometheus_client.parser import text_string_to_metric_families

from corral.bench.loadgen import Target, abba_ratios, one_request
from corral.bench.prompts import WORDS, long_text, short_prompts

COPY_PAIRS = 6  # per copy prompt: a near-tie flip moves one pair by 2x
PAIRS = {1: 8, 8: 4}


def code_edit(rng: random.Random) -> tuple[str, str]:
    """A ~300-token module and the instruction to change one literal in it."""
    names = rng.sample(WORDS, 8)
    funcs = [
        f"def {n}_total(items, rate={rng.randint(2, 9)}):\n"
        f"    total = 0\n    for item in items:\n        total += item * rate\n"
        f"    return total + {rng.randint(10, 99)}\n"
        for n in names
    ]
    code = "\n\n".join(funcs)
    return f"Repeat this code exactly, but change the first rate default to 1:\n\n{code}", code


def json_edit(rng: random.Random) -> tuple[str, str]:
    doc = "{\n" + ",\n".join(f'  "{w}": {rng.randint(1, 999)}' for w in rng.sample(WORDS, 24))
    doc += "\n}"
    return f"Repeat this JSON exactly, but set the first value to 0:\n\n{doc}", doc


def text_copy(rng: random.Random) -> tuple[str, str]:
    text = long_text(520, rng)  # ~700 tokens
    return f"Repeat this text exactly:\n\n{text}", text


COPY: dict[str, tuple[Callable[[random.Random], tuple[str, str]], int]] = {
    "code": (code_edit, 400),
    "json": (json_edit, 300),
    "text": (text_copy, 800),
}


async def _one(
    http: httpx.AsyncClient, target: Target, prompt: str, max_tokens: int
) -> tuple[float, float]:
    """(output speed, end-to-end tok/s) of one streamed request; NaN on an error.

    Output speed is tokens after the first over the time from the first token to the last:
    drafts change decoding only, and the two sides' answers differ in length (near-ties
    flip, natural lengths), so a prefill of the same ~300-700 prompt tokens in the
    end-to-end figure weighs more on whichever answer is shorter."""
    r = await one_request(http, target, prompt, max_tokens)
    if r.error is not None or r.ttft is None or r.tokens < 2 or not r.itls:
        return float("nan"), float("nan")
    decode = sum(r.itls)
    return (r.tokens - 1) / decode, r.tokens / (r.ttft + decode)


async def drafted(http: httpx.AsyncClient, corral: systems.Running) -> tuple[float, float]:
    """corral's counters of drafted and accepted tokens (Prometheus, all models)."""
    url = corral.target.base_url.removesuffix("/v1") + "/metrics"
    text = (await http.get(url, headers=corral.target.headers)).text
    totals = {"corral_draft_tokens_total": 0.0, "corral_draft_accepted_tokens_total": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals["corral_draft_tokens_total"], totals["corral_draft_accepted_tokens_total"]


def _natural(target: Target, **extra: Any) -> Target:
    return replace(target, extra={**extra})


async def copy_pairs(corral: systems.Running, engine: systems.Running) -> dict[str, Any]:
    """corral's default (and with ``prediction`` on the code edit) over the engine: output
    speed ratios, end-to-end ratios, and the share of corral's drafts the model kept."""
    out: dict[str, Any] = {"acceptance": {}}
    async with httpx.AsyncClient(timeout=600) as http:
        for name, (make, max_tokens) in COPY.items():
            modes = ["default", "prediction"] if name == "code" else ["default"]
            for mode in modes:
                key = f"copy {name}" + (", prediction" if mode == "prediction" else "")
                print(f"  speculative: {key} vs the engine …", flush=True)
                ratios, whole = [], []
                before = await drafted(http, corral)
                for i in range(COPY_PAIRS):
                    prompt, original = make(random.Random(f"{name}{mode}{i}"))
                    extra = {"prediction": {"type": "content", "content": original}}
                    ours = _natural(corral.target, **(extra if mode == "prediction" else {}))
                    base = _natural(engine.target)
                    order = [(ours, "a"), (base, "b")] if i % 2 == 0 else [(base, "b"), (ours, "a")]
                    tps = {k: await _one(http, t, prompt, max_tokens) for t, k in order}
                    ratios.append(tps["a"][0] / tps["b"][0])
                    whole.append(tps["a"][1] / tps["b"][1])
                after = await drafted(http, corral)
                n, kept = after[0] - before[0], after[1] - before[1]
                out["acceptance"][key] = [n, kept]
                out[key] = ratios
                out[f"{key}, end to end"] = whole
    return out


async def engine_pairs(
    corral: systems.Running, off: systems.Running, engine: systems.Running, fresh: systems.Running
) -> dict[str, list[float]]:
    """``fresh``: an engine that has run nothing before, the match of ``off``. An engine
    that ran the copy workloads decodes slower: its unified KV cache still holds the
    other slots' prompts, and every decode step attends over all cells in use (masked),
    7.35 against 6.5 ms a token in one run, so the per-token cost needs equal histories."""
    out: dict[str, list[float]] = {}
    for c in (1, 8):
        print(f"  speculative: prose, {c} stream(s), corral vs the engine …", flush=True)
        prompts = short_prompts(c, seed=21)
        ours, base = _natural(corral.target), _natural(engine.target)
        out[f"prose {c}"] = await abba_ratios(ours, base, prompts, 160, PAIRS[c], False)
    print("  speculative: 300-token answers, speculation off, vs the engine …", flush=True)
    out["long 1, speculation off"] = await abba_ratios(
        off.target, fresh.target, short_prompts(1, seed=22), 300, PAIRS[1], True
    )
    print("  speculative: 128 tokens at temperature 0.8, 8 streams, vs the engine …", flush=True)
    sampled = {"temperature": 0.8, "seed": 5}
    out["sampled 8"] = await abba_ratios(
        replace(corral.target, extra={**corral.target.extra, **sampled}),
        replace(engine.target, extra={**engine.target.extra, **sampled}),
        short_prompts(8, seed=23),
        128,
        PAIRS[8],
        True,
    )
    return out


async def speculative_part(env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Every ratio list of this part, keyed by workload, and ``acceptance``: drafted and
    accepted token counts per copy workload."""
    off_env = {
        **env,
        "CORRAL_DATA_DIR": str(Path(env["CORRAL_DATA_DIR"]).with_name("data-spec-off")),
        "CORRAL_ENGINE__SPECULATIVE": "off",
    }
    engine_env = {**env, "CORRAL_ENGINE__SPECULATIVE": "off"}
    corral = systems.start_corral(env, logs / "spec-corral.log")
    off = systems.start_corral(off_env, logs / "spec-off.log")
    engine = systems.start_engine_direct(engine_env, logs / "spec-engine.log")
    fresh = systems.start_engine_direct(engine_env, logs / "spec-engine-fresh.log")
    try:
        out = await copy_pairs(corral, engine)
        out |= await engine_pairs(corral, off, engine, fresh)
    finally:
        for r in (corral, off, engine, fresh):
            r.stop()
    return out
