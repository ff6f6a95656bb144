"""schemathesis hooks for the fuzz runs (loaded through SCHEMATHESIS_HOOKS).

Generation on the CPU is slow, so requested lengths are capped before each call: the
fuzzer still sends every field and shape, only the work a valid request asks for is
bounded. Each call is counted per operation; the counts are written as JSON to
``CORRAL_FUZZ_COUNTS`` as the run goes and when it ends (docs/reliability.md quotes
them).
"""

from __future__ import annotations

import atexit
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis

# Field → the most a fuzzed request may ask for (tokens, choices, candidates).
CAPS = {
    "max_tokens": 4,
    "max_completion_tokens": 4,
    "max_output_tokens": 16,
    "n": 2,
    "best_of": 2,
    "top_logprobs": 2,
    "logprobs": 2,
}
counts: Counter[str] = Counter()


# A generation request that names no length (or names it null) runs to the end of the
# context window (as OpenAI's do): minutes on this CPU. Such a body gets the endpoint's
# length field. (A null one passed through once: a 150-s pass with seed 7 ended in a
# chat completion generating past 1,900 tokens until the 120-s request timeout.)
DEFAULT_LENGTH = {
    "/v1/chat/completions": ("max_tokens", 4),
    "/v1/completions": ("max_tokens", 4),
    "/v1/responses": ("max_output_tokens", 16),
}
LENGTH_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def cap(body: Any, path: str = "") -> None:
    if not isinstance(body, dict):
        return
    if path in DEFAULT_LENGTH and all(body.get(f) is None for f in LENGTH_FIELDS):
        field, length = DEFAULT_LENGTH[path]
        body[field] = length
    for field, most in CAPS.items():
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            body[field] = most
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        thinking["budget_tokens"] = min(thinking["budget_tokens"], 4)


def served(body: Any) -> None:
    """Half the generated model names become the served model's, chosen by the name's
    hash (so a run repeats): a random name stops at 404, and the fuzzed parameters would
    never reach the engine."""
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and zlib.crc32(model.encode()) % 2 == 0:
        body["model"] = os.environ.get("CORRAL_FUZZ_MODEL", "smollm2-135m-instruct")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    served(case.body)
    cap(case.body, case.operation.path)
    counts[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    if counts.total() % 250 == 0:  # a long run stopped early still leaves its figures
        _write()


def _write() -> None:
    target = os.environ.get("CORRAL_FUZZ_COUNTS")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(counts.items())), indent=1))


atexit.register(_write)
