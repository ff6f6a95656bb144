"""One data item of an eval run: build its messages, sample the model, grade the sample.

The calls to models come in as functions (``Chat``, ``Embed``) so this module knows
nothing of metering, the registry or HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from corral.core.errors import CorralError
from corral.evals.definitions import EvalDefinition
from corral.evals.graders import Chat, Embed, Python, grade
from corral.evals.templates import TemplateError, lookup, parse_path, render
from corral.protocol.evals import GraderResult, ItemReference, TemplateMessages

Status = Literal["pass", "fail", "error"]


@dataclass(frozen=True)
class RunPlan:
    definition: EvalDefinition
    model: str | None  # None: a jsonl run grades the samples it was given
    messages: TemplateMessages | ItemReference | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # chat request fields


@dataclass
class ItemOutcome:
    status: Status
    results: list[GraderResult]
    sample: dict[str, Any]


ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def build_messages(plan: RunPlan, item: dict[str, Any]) -> list[dict[str, Any]]:
    context = {"item": item}
    if isinstance(plan.messages, TemplateMessages):
        return [
            {
                "role": "system" if m.role == "developer" else m.role,
                "content": render(m.text(), context),
            }
            for m in plan.messages.template
        ]
    assert plan.messages is not None
    given = lookup(context, parse_path(plan.messages.item_reference))
    if not isinstance(given, list) or not given:
        raise TemplateError(f"`{plan.messages.item_reference}` must hold a list of messages")
    return [_given_message(plan.messages.item_reference, m) for m in given]


def _given_message(where: str, m: Any) -> dict[str, Any]:
    """One message of an item's conversation: {role, content}, and a conversation's tool
    turns as Chat Completions has them: an assistant's ``tool_calls`` (content may then
    be null) and a tool result's ``tool_call_id``. Anything else is left out."""
    role = m.get("role") if isinstance(m, dict) else None
    calls = m.get("tool_calls") if isinstance(m, dict) else None
    if role not in ROLES or (calls is not None and role != "assistant"):
        raise TemplateError(
            f"`{where}` must hold {{role, content}} messages (role one of "
            f"{', '.join(sorted(ROLES))}); tool_calls only on an assistant's"
        )
    assert isinstance(m, dict)
    content = m.get("content")
    if not (isinstance(content, str) or (content is None and calls)):
        raise TemplateError(f"`{where}`: a {role} message needs its content as a string")
    out: dict[str, Any] = {"role": role, "content": content}
    if calls is not None:
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise TemplateError(f"`{where}`: tool_calls must be a list of tool call objects")
        out["tool_calls"] = calls
    if role == "tool":
        if not isinstance(m.get("tool_call_id"), str):
            raise TemplateError(f"`{where}`: a tool message needs the tool_call_id it answers")
        out["tool_call_id"] = m["tool_call_id"]
    return out


def _parsed_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


def sample_namespace(response: dict[str, Any]) -> dict[str, Any]:
    """What ``{{sample.*}}`` sees: the first choice's text, JSON and tool calls, and the
    calls' names (sorted, comma-separated; "" for none) and arguments (one per line)."""
    choice = response["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    tools = message.get("tool_calls") or []
    functions = [call.get("function") or {} for call in tools]
    return {
        "output_text": text,
        "output_json": _parsed_json(text),
        "output_tools": tools,
        # corral's: what a string_check can compare whatever the number of calls, none
        # included (a path into output_tools is an error on an answer without calls).
        "output_tool_names": ",".join(sorted(str(f.get("name")) for f in functions)),
        "output_tool_arguments": "\n".join(str(f.get("arguments")) for f in functions),
        "choices": response["choices"],
        "model": response.get("model"),
        "finish_reason": choice.get("finish_reason"),
    }


def sample_record(
    plan: RunPlan,
    messages: list[dict[str, Any]],
    response: dict[str, Any] | None,
    error: CorralError | TemplateError | None = None,
) -> dict[str, Any]:
    """The output item's ``sample``, in OpenAI's shape."""
    record: dict[str, Any] = {
        "input": messages,
        "output": [],
        "finish_reason": None,
        "model": plan.model,
        "usage": None,
        "error": None,
        "temperature": plan.sampling.get("temperature"),
        "max_completion_tokens": plan.sampling.get("max_completion_tokens"),
        "top_p": plan.sampling.get("top_p"),
        "seed": plan.sampling.get("seed"),
    }
    if error is not None:
        code = error.code if isinstance(error, CorralError) else "invalid_template"
        record["error"] = {"code": code or "error", "message": str(error)}
    if response is not None:
        choice = response["choices"][0]
        message = choice.get("message") or {}
        out = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            out["tool_calls"] = message["tool_calls"]
        record |= {
            "output": [out],
            "finish_reason": choice.get("finish_reason"),
            "model": response.get("model"),
            "usage": _usage(response.get("usage") or {}),
        }
    return record


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0),
    }


async def _sampled(
    plan: RunPlan, item: dict[str, Any], chat: Chat
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the sample namespace, or None when sampling failed; the sample record)."""
    assert plan.model is not None
    try:
        messages = build_messages(plan, item)
    except TemplateError as exc:
        return None, sample_record(plan, [], None, exc)
    try:
        response = await chat(plan.model, {"messages": messages, **plan.sampling})
    except CorralError as exc:
        return None, sample_record(plan, messages, None, exc)
    except ValidationError as exc:  # an item's conversation the chat request refuses
        error = TemplateError(
            f"the item's messages are not a chat request: {exc.errors()[0]['msg']}"
        )
        return None, sample_record(plan, messages, None, error)
    return sample_namespace(response), sample_record(plan, messages, response)


async def evaluate(
    plan: RunPlan,
    item: dict[str, Any],
    given_sample: dict[str, Any] | None,
    chat: Chat,
    embed: Embed,
    python: Python,
) -> ItemOutcome:
    if plan.model is not None:
        sample, record = await _sampled(plan, item, chat)
        if sample is None:
            return ItemOutcome("error", [], record)
    else:
        sample, record = given_sample or {}, given_sample or {}
    context = {"item": item, "sample": sample}
    results = [await grade(g, context, chat, embed, python) for g in plan.definition.graders]
    if any(r.error for r in results):
        status: Status = "error"
    else:
        status = "pass" if all(r.passed for r in results) else "fail"
    return ItemOutcome(status, results, record)
