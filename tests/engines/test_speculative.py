"""Speculative decoding as corral configures it: greedy output with n-gram drafts is the
model's own output without them, except where the two differ at a near-tie.

Drafts are verified in a batch of several tokens, and llama.cpp's batched CPU kernels
round differently from its one-token kernels, so the model's top two choices may swap
where their log-probabilities nearly tie. Each flip must be such a tie: the plain run's
first choice at the flip is ahead of the second by less than NEAR_TIE, and the drafted
run's token is that second choice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from corral.catalog.schema import embedded_model_path
from corral.engines.params import PlainSettings, server_params

pytestmark = pytest.mark.slow

# Nats. The two kernels were seen to move one token's log-probability by up to ~0.3
# (readme prompt: plain -0.894 vs -1.102, drafted -1.006 vs -0.954).
NEAR_TIE = 0.5
TOKENS = 48

_DOC = json.dumps({"items": [{"id": i, "name": f"item-{i}", "price": i * 1.5} for i in range(6)]})
_TEXT = (
    "The llama is a domesticated South American camelid, widely used as a meat and pack "
    "animal by Andean cultures since the pre-Columbian era. Llamas are social animals."
)
PROMPTS = [
    f"Repeat this JSON exactly, changing the name of item 5 to 'last':\n{_DOC}",
    f"Copy this passage word for word:\n{_TEXT}",
    "Rewrite this code, renaming add to plus:\ndef add(a, b):\n    return a + b\n",
    "List the numbers from 1 to 30, separated by commas.",
    "Write a short story about a llama who learns to fly.",
    "Explain how a bicycle works.",
]


def _server(speculative: str) -> Any:
    import xllamacpp as xlc

    settings = PlainSettings(
        n_ctx=2048,
        n_parallel=1,
        n_threads=2,
        n_batch=512,
        n_ubatch=512,
        cache_ram_mib=0,
        embeddings=False,
        chat_template=None,
        speculative=speculative,
    )
    return xlc.Server(server_params(embedded_model_path(), settings, "test-key", ()))


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Any, Any]]:
    plain, drafted = _server("off"), _server("ngram")
    yield plain, drafted
    del plain, drafted


def _greedy(server: Any, prompt: str, logprobs: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "seed": 1,
    }
    if logprobs:
        body |= {"logprobs": True, "top_logprobs": 2}
    result: dict[str, Any] = server.handle_chat_completions(body)
    return result


def _tokens(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["choices"][0]["logprobs"]["content"])


def test_greedy_output_agrees_and_flips_only_at_near_ties(servers: tuple[Any, Any]) -> None:
    plain, drafted = servers
    same, drafts, accepted = 0, 0, 0
    for prompt in PROMPTS:
        want = _greedy(plain, prompt, logprobs=True)
        got = _greedy(drafted, prompt, logprobs=True)
        drafts += int(got.get("timings", {}).get("draft_n") or 0)
        accepted += int(got.get("timings", {}).get("draft_n_accepted") or 0)
        if got["choices"][0]["message"]["content"] == want["choices"][0]["message"]["content"]:
            same += 1
            continue
        pairs = zip(_tokens(want), _tokens(got), strict=False)
        index, (first, other) = next((i, p) for i, p in enumerate(pairs) if p[0] != p[1])
        top = first["top_logprobs"]
        gap = top[0]["logprob"] - top[1]["logprob"]
        print(f"flip at token {index}: {first['token']!r} → {other['token']!r}, gap {gap:.3f}")
        assert gap < NEAR_TIE, (prompt, index, top, other["token"])
        assert other["token"] == top[1]["token"], (prompt, index, top, other["token"])
    print(f"greedy agreement {same}/{len(PROMPTS)}; drafts {accepted}/{drafts} accepted")
    assert drafts > 0 and accepted > 0  # the drafter ran and some drafts were kept
    assert same >= len(PROMPTS) // 2


def test_seeded_samples_are_the_same_with_drafts(servers: tuple[Any, Any]) -> None:
    """llama.cpp accepts a drafted token only where its sampler, run over the verified
    logits, picks that same token (one draw per position, as without drafts), so the
    distribution is the model's own and a seeded sample repeats; near-ties aside."""
    plain, drafted = servers
    same, drafts = 0, 0
    for i, prompt in enumerate(PROMPTS):
        body = {
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": TOKENS,
            "temperature": 0.8,
            "seed": 100 + i,
        }
        want = plain.handle_chat_completions(dict(body))["choices"][0]["message"]["content"]
        got = drafted.handle_chat_completions(dict(body))
        drafts += int(got.get("timings", {}).get("draft_n") or 0)
        same += got["choices"][0]["message"]["content"] == want
    print(f"seeded samples identical with drafts: {same}/{len(PROMPTS)}")
    assert drafts > 0
    assert same >= len(PROMPTS) - 2
