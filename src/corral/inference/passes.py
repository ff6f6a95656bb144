"""A request answered in several passes on the core: a tool corral runs itself (a
file search, an MCP call) is asked for in one pass, run, and its result read by the
next. Each pass is the request again with the calls and their results at the end of its
history, and what is left of its output budget; their usage is reported once, added up."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from functools import reduce
from typing import Any

from corral.accounts.metering import Charge
from corral.inference.chat import ChatService, PreparedChat
from corral.inference.requests import added_usage, with_reasoning
from corral.protocol.chat import CORE_NAMES, ChatCompletionRequest
from corral.protocol.common import Usage

Message = dict[str, Any]
RESULTS_SHARE = 4  # a tool's results the model reads: at most window / 4 characters


def widened(charge: Charge, window: int, passes: int = 2) -> Charge:
    """A request that may run tools of corral's: its reservation covers the passes after
    the first, each reading the first pass's prompt and a tool's results again (at most
    a quarter of the window each), and writing its answer again."""
    results = window // RESULTS_SHARE
    return replace(
        charge,
        prompt_bound=passes * charge.prompt_bound + (passes - 1) * results,
        max_output=passes * charge.max_output,
    )


def call_messages(call_id: str, name: str, arguments: str, result: str) -> list[Message]:
    """A call the model made and the result corral got for it, as the core's history."""
    function = {"name": name, "arguments": arguments or "{}"}
    asked = {"id": call_id, "type": "function", "function": function}
    return [
        {"role": "assistant", "content": None, "tool_calls": [asked]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


async def next_pass(
    chat: ChatService,
    first: PreparedChat,
    added: list[Message],
    spent: list[Usage],
    drop: Collection[str] = (),
) -> PreparedChat | None:
    """The first pass's request with ``added`` at the end of its history, the tools named
    in ``drop`` taken away, its ``tool_choice`` honoured once (a forced call would be
    forced again), and the output budget the passes so far left (None: none is left)."""
    body = first.req.model_dump(exclude_none=True)
    body["messages"] += added
    tools = [t for t in body.pop("tools", []) if t["function"]["name"] not in drop]
    body.pop("tool_choice", None)
    if tools:
        body["tools"] = tools
    limit = first.req.output_limit
    if limit is not None:
        left = limit - sum(u.completion_tokens for u in spent)
        if left <= 0:
            return None
        body.pop("max_tokens", None)
        body["max_completion_tokens"] = left
    req = ChatCompletionRequest.model_validate(body, context=CORE_NAMES)
    return await chat.prepare(req, fit=True)


def total(usages: list[Usage]) -> Usage:
    """Every pass's tokens (``added_usage``, as for a second pass in words), and their
    reasoning tokens."""
    summed = reduce(added_usage, [u.model_dump() for u in usages])
    reasoning = sum(u.completion_tokens_details.reasoning_tokens for u in usages)
    return with_reasoning(Usage.model_validate(summed), reasoning)
