"""Checks and translations shared by the generation endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from corral.core.errors import ContextLengthExceededError, InvalidRequestError
from corral.protocol.common import (
    ACCEPTED_NO_OP_FIELDS,
    REFUSED_FIELDS,
    OpenAIModel,
    Usage,
)


def refuse_unknown_fields(req: OpenAIModel) -> None:
    """OpenAI answers 400 to arguments it does not know; so does corral."""
    for name in req.unknown_fields():
        if name in ACCEPTED_NO_OP_FIELDS:
            continue
        if name in REFUSED_FIELDS:
            raise InvalidRequestError(
                f"The parameter `{name}` is not accepted: the server controls it.",
                param=name,
                code="unsupported_parameter",
            )
        raise InvalidRequestError(f"Unrecognized request argument supplied: {name}", param=name)


def check_count(name: str, count: int, limit: int) -> None:
    if count > limit:
        raise InvalidRequestError(
            f"`{name}` has {count} items; at most {limit} are allowed.", param=name
        )


def stop_list(stop: str | list[str] | None, limit: int) -> list[str] | None:
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else stop
    check_count("stop", len(stops), limit)
    return stops


def sampling_body(req: Any, stop_limit: int) -> dict[str, Any]:
    """Sampling fields common to chat and completions, in the engine's vocabulary."""
    body: dict[str, Any] = {}
    names = ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty", "logit_bias")
    for name in names:
        value = getattr(req, name, None)
        if value is not None:
            body[name] = value
    stops = stop_list(req.stop, stop_limit)
    if stops:
        body["stop"] = stops
    if req.ignore_eos:
        body["ignore_eos"] = True
    return body


def seeded(body: dict[str, Any], seed: int | None, index: int) -> dict[str, Any]:
    """One engine request per choice; choice i gets seed + i so all stay reproducible."""
    if seed is None:
        return body
    return {**body, "seed": (seed + index) % (2**32)}


async def check_context(
    context_window: int,
    max_output: int,
    prompt_bound: int,
    count_exact: Callable[[], Awaitable[int]],
) -> None:
    """Refuse prompt + output over the window before the engine starts work.

    ``prompt_bound`` is an upper bound on prompt tokens (UTF-8 bytes plus template
    overhead: a byte-level tokenizer never yields more tokens than bytes), so the exact
    count, which costs a tokenizer round trip, is only needed near the limit.
    """
    if prompt_bound + max_output <= context_window:
        return
    prompt = await count_exact()
    if prompt + max_output > context_window:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {context_window} tokens. However, you "
            f"requested {prompt + max_output} tokens ({prompt} in the messages, {max_output} "
            "in the completion). Please reduce the length of the messages or completion.",
            param="messages",
        )


async def fit_output(
    context_window: int,
    max_output: int,
    prompt_bound: int,
    count_exact: Callable[[], Awaitable[int]],
) -> int:
    """The output limit clamped to what the window leaves after the prompt (Anthropic's
    clients send a fixed ``max_tokens`` that may exceed a small model's window); a
    prompt that fills the window alone is still refused."""
    if prompt_bound + max_output <= context_window:
        return max_output
    prompt = await count_exact()
    if prompt >= context_window:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {context_window} tokens; the prompt "
            f"alone is {prompt} tokens. Please reduce the length of the messages.",
            param="messages",
        )
    return min(max_output, context_window - prompt)


def merge_usage(usages: list[dict[str, Any]]) -> Usage:
    """Usage of one request fanned out into several engine requests (one per choice).

    The prompt is billed once, as OpenAI does for ``n``; completions add up.
    """
    first = usages[0]
    prompt = int(first.get("prompt_tokens", 0))
    completion = sum(int(u.get("completion_tokens", 0)) for u in usages)
    cached = int((first.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    return Usage.model_validate(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    )


def added_usage(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two engine passes of one answer: every token the engine read and wrote."""
    cached = [
        (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) for u in (first, second)
    ]
    total = {
        k: int(first.get(k, 0)) + int(second.get(k, 0))
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    return {**total, "prompt_tokens_details": {"cached_tokens": sum(cached)}}


def with_reasoning(usage: Usage, reasoning_tokens: int) -> Usage:
    usage.completion_tokens_details.reasoning_tokens = reasoning_tokens
    return usage
