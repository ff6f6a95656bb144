"""schemathesis hooks for the fuzz runs (loaded through SCHEMATHESIS_HOOKS).

Generation on the CPU is slow, so requested lengths are capped before each call: the
fuzzer still sends every field and shape, only the work a valid request asks for is
bounded. Each call is counted per operation; the counts are written as JSON to
``CORRAL_FUZZ_COUNTS`` when the run ends (docs/reliability.md quotes them).
"""

from __future__ import annotations

import atexit
import json
import os
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


def cap(body: Any) -> None:
    if not isinstance(body, dict):
        return
    for field, most in CAPS.items():
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            body[field] = most
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        thinking["budget_tokens"] = min(thinking["budget_tokens"], 4)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    cap(case.body)
    counts[f"{case.operation.method.upper()} {case.operation.path}"] += 1


def _write() -> None:
    target = os.environ.get("CORRAL_FUZZ_COUNTS")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(counts.items())), indent=1))


atexit.register(_write)
