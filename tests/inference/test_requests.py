from __future__ import annotations

import pytest

from corral.core.errors import ContextLengthExceededError
from corral.inference.requests import check_context, merge_usage, seeded


async def test_exact_count_only_near_the_limit() -> None:
    calls = []

    async def exact() -> int:
        calls.append(1)
        return 90

    await check_context(100, 10, prompt_bound=50, count_exact=exact)
    assert calls == []
    await check_context(100, 10, prompt_bound=500, count_exact=exact)
    assert calls == [1]
    with pytest.raises(ContextLengthExceededError):
        await check_context(100, 11, prompt_bound=500, count_exact=exact)


def test_usage_bills_prompt_once() -> None:
    u = merge_usage(
        [
            {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
            {"prompt_tokens": 10, "completion_tokens": 5},
        ]
    )
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (10, 8, 18)
    assert u.prompt_tokens_details.cached_tokens == 4


def test_seeds_per_choice() -> None:
    assert seeded({"a": 1}, None, 3) == {"a": 1}
    assert seeded({"a": 1}, 7, 2) == {"a": 1, "seed": 9}
