"""Predicted Outputs (``prediction`` on Chat Completions): the checks OpenAI makes, and
the usage it reports — the prediction's tokens the completion kept (accepted) and those it
did not (rejected, billed as output).

The engines cannot take a per-request draft at their pinned versions (llama.cpp drafts
only from the slot's own context, and ignores per-request ``speculative.*`` fields), so
what speeds up an edit is the engine's n-gram drafter over the prompt, which holds the
text being edited in the common case. The accounting does not depend on the engine:
the prediction is aligned with the completion here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from difflib import SequenceMatcher

from corral.core.errors import InvalidRequestError
from corral.protocol.chat import ChatCompletionRequest
from corral.protocol.common import Usage

# Word, run of spaces, or one other character: fine enough to align like tokens do, and
# coarse enough that aligning two long texts stays cheap.
_PIECES = re.compile(r"\w+|\s+|[^\w\s]")
_MAX_CHARS_PER_TOKEN = 32


def check_prediction(req: ChatCompletionRequest) -> None:
    """Refuse what OpenAI refuses alongside a prediction."""
    if req.prediction is None:
        return
    unsupported = (
        ("n", req.n > 1),
        ("logprobs", req.logprobs),
        ("presence_penalty", (req.presence_penalty or 0) > 0),
        ("frequency_penalty", (req.frequency_penalty or 0) > 0),
        ("tools", bool(req.tools)),
    )
    for name, present in unsupported:
        if present:
            raise InvalidRequestError(
                f"`{name}` is not supported with predicted outputs (`prediction`).",
                param=name,
                code="unsupported_parameter",
            )


async def prediction_tokens(
    req: ChatCompletionRequest, window: int, count: Callable[[str], Awaitable[int]]
) -> int:
    """The prediction's tokens, refused past the context window (a completion cannot be
    longer, so neither can a useful prediction); its length is bounded before counting."""
    if req.prediction is None:
        return 0
    text = req.prediction.text
    # A token holds at most a few dozen characters: longer text is refused uncounted.
    tokens = window + 1 if len(text) > window * _MAX_CHARS_PER_TOKEN else await count(text)
    if tokens > window:
        raise InvalidRequestError(
            f"`prediction` is longer than the model's context window ({window} tokens).",
            param="prediction",
            code="context_length_exceeded",
        )
    return tokens


def kept_text(prediction: str, output: str) -> str:
    """The prediction's pieces that appear, in order, in the output."""
    a = _PIECES.findall(prediction)
    b = _PIECES.findall(output)
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return "".join("".join(a[m.a : m.a + m.size]) for m in matcher.get_matching_blocks())


async def with_prediction(
    usage: Usage,
    prediction: str,
    prediction_tokens: int,
    output: str,
    count: Callable[[str], Awaitable[int]],
) -> Usage:
    """``usage`` with the prediction's accepted and rejected tokens; the rejected ones are
    added to the completion tokens, as OpenAI counts them."""
    kept = kept_text(prediction, output)
    accepted = min(prediction_tokens, await count(kept)) if kept else 0
    rejected = prediction_tokens - accepted
    details = usage.completion_tokens_details
    details.accepted_prediction_tokens = accepted
    details.rejected_prediction_tokens = rejected
    usage.completion_tokens += rejected
    usage.total_tokens += rejected
    return usage
