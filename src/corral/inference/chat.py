"""Chat completions: validation, tool planning, fan-out over choices, streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from corral.accounts.metering import Charge
from corral.catalog.registry import ModelRegistry, ServedModel
from corral.core.config import LimitSettings
from corral.core.errors import InvalidRequestError
from corral.core.ids import new_id
from corral.engines.base import Body
from corral.inference.admission import Admission
from corral.inference.chat_stream import ChatRun, stream_chat
from corral.inference.native_tools import engine_calls
from corral.inference.prediction import check_prediction, prediction_tokens, with_prediction
from corral.inference.prepared import Prepared
from corral.inference.reasoning import (
    check_effort,
    is_reasoning,
    split_reasoning,
    thinking_budget,
)
from corral.inference.requests import (
    added_usage,
    check_context,
    check_count,
    fit_output,
    merge_usage,
    refuse_unknown_fields,
    sampling_body,
    seeded,
    with_reasoning,
)
from corral.inference.telemetry import Telemetry
from corral.inference.tool_schema import check_parameters
from corral.inference.tools import ToolPlan, in_words, parse_output, plan_tools, request_format
from corral.protocol.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    NamedToolChoice,
)
from corral.protocol.common import Usage
from corral.protocol.events import Event, started

TEMPLATE_OVERHEAD_PER_MESSAGE = 16
TEMPLATE_OVERHEAD = 64


def _validate(req: ChatCompletionRequest, limits: LimitSettings) -> None:
    refuse_unknown_fields(req)
    check_count("n", req.n, limits.max_n)
    check_prediction(req)
    check_count("messages", len(req.messages), limits.max_messages)
    check_count("tools", len(req.tools or []), limits.max_tools)
    for index, tool in enumerate(req.tools or ()):
        function = tool.function
        check_parameters(function.name, function.parameters, f"tools[{index}].function.parameters")
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequestError(
            "`top_logprobs` needs `logprobs` set to true.", param="top_logprobs"
        )
    if req.tool_choice is not None and req.tool_choice != "none" and not req.tools:
        raise InvalidRequestError(
            "`tool_choice` is only allowed when `tools` are specified.", param="tool_choice"
        )
    if isinstance(req.tool_choice, NamedToolChoice):
        names = {t.function.name for t in req.tools or []}
        if req.tool_choice.function.name not in names:
            raise InvalidRequestError(
                f"Tool choice `{req.tool_choice.function.name}` is not one of the tools.",
                param="tool_choice",
            )
    fmt = req.response_format
    if (
        fmt is not None
        and fmt.type == "json_schema"
        and (fmt.json_schema is None or fmt.json_schema.json_schema is None)
    ):
        raise InvalidRequestError(
            "`response_format.json_schema.schema` is required for type json_schema.",
            param="response_format.json_schema",
        )


async def native_tools(served: ServedModel, req: ChatCompletionRequest) -> bool:
    """Whether this request's tools reach the model in its template's own format."""
    if not req.tools:
        return False
    chosen = served.spec.tool_format
    return chosen == "native" or (chosen == "auto" and await served.engine.template_tools())


def _prompt_bound(messages: list[dict[str, Any]]) -> int:
    size = sum(len(str(m["content"]).encode()) for m in messages)
    return size + TEMPLATE_OVERHEAD_PER_MESSAGE * len(messages) + TEMPLATE_OVERHEAD


def _engine_body(req: ChatCompletionRequest, plan: ToolPlan, limits: LimitSettings) -> Body:
    body: Body = {"messages": plan.messages, **sampling_body(req, limits.max_stop)}
    if req.output_limit is not None:
        body["max_tokens"] = req.output_limit
    if req.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = req.top_logprobs or 0
    if plan.tools is not None:
        body["tools"] = plan.tools
        body["tool_choice"] = plan.tool_choice
        body["parallel_tool_calls"] = req.parallel_tool_calls
    response_format = plan.response_format or request_format(req)
    if response_format is not None:
        body["response_format"] = response_format
    if req.prompt_cache_key:
        body["prompt_cache_key"] = req.prompt_cache_key
    return body


@dataclass(frozen=True, kw_only=True)
class PreparedChat(Prepared):
    req: ChatCompletionRequest
    plan: ToolPlan
    bodies: list[Body]  # one per choice, each with its seed
    stops: list[str] | None = None  # matched by corral, not the engine (see ``stops``)
    prediction_tokens: int = 0


class ChatService:
    def __init__(
        self,
        registry: ModelRegistry,
        limits: LimitSettings,
        admission: Admission,
        telemetry: Telemetry,
    ):
        self._registry = registry
        self._limits = limits
        self._admission = admission
        self._telemetry = telemetry

    async def prepare(
        self, req: ChatCompletionRequest, *, fit: bool = False, find_stops: bool = False
    ) -> PreparedChat:
        """Everything that can be refused is refused here, before metering.

        ``fit``: an output limit over what the window leaves is clamped to it, not
        refused. ``find_stops``: stop sequences are matched by corral so the finish
        chunk can name the one found (one choice, streamed, without tools)."""
        _validate(req, self._limits)
        served = self._registry.get(req.model)
        check_effort(served.spec, req.reasoning_effort)
        plan = plan_tools(req, await native_tools(served, req))
        body = _engine_body(req, plan, self._limits)
        window = served.engine.info.context_window
        prompt_bound = _prompt_bound(plan.messages) + len(
            json.dumps([body.get("response_format", ""), plan.tools or ""])
        )
        count = lambda: served.engine.count_chat_tokens(body)  # noqa: E731
        if fit and req.output_limit is not None:
            req.max_completion_tokens = await fit_output(
                window, req.output_limit, prompt_bound, count
            )
            body["max_tokens"] = req.max_completion_tokens
        await check_context(window, req.output_limit or 0, prompt_bound, count)
        if is_reasoning(served.spec):
            body["thinking_budget_tokens"] = thinking_budget(req.reasoning_effort, req.output_limit)
        stops = body.pop("stop", None) if find_stops and plan.mode == "off" else None
        # Rejected prediction tokens are billed as output: at most all of them.
        predicted = await prediction_tokens(req, window, served.engine.count_tokens)
        output_bound = (req.output_limit or window) * req.n + predicted
        return PreparedChat(
            served=served,
            charge=Charge(served.spec, "chat", prompt_bound, output_bound),
            stream=req.stream,
            want_usage=bool(req.stream_options and req.stream_options.include_usage),
            req=req,
            plan=plan,
            bodies=[seeded(body, req.seed, i) for i in range(req.n)],
            stops=stops,
            prediction_tokens=predicted,
        )

    async def count_prompt(self, req: ChatCompletionRequest) -> int:
        """The request's prompt tokens after the template and the tools prompt (no window
        check: counting a prompt too long to answer is what a client may want)."""
        _validate(req, self._limits)
        served = self._registry.get(req.model)
        plan = plan_tools(req, await native_tools(served, req))
        return await served.engine.count_chat_tokens(_engine_body(req, plan, self._limits))

    async def run(self, p: PreparedChat) -> ChatCompletion | AsyncIterator[Event]:
        timer = self._telemetry.timer(p.served.spec.id, p.charge.endpoint)
        if not p.stream:
            with self._admission.slot(p.served), timer.cancelled():
                result = await self._complete(p.req, p.served, p.plan, p.bodies)
                if p.req.prediction is not None:
                    text = result.choices[0].message.content or ""
                    await self._predicted(p, result.usage, text)
            timer.finish(result.usage.model_dump())
            return result
        self._admission.enter(p.served)
        predicted = p.req.prediction is not None
        run = ChatRun(p.plan, p.bodies, is_reasoning(p.served.spec), timer, keep_text=predicted)
        finalize = partial(self._predicted, p) if predicted else None
        leave = partial(self._admission.leave, p.served)
        return await started(stream_chat(p.served.engine, run, p.stops, finalize, leave))

    async def _predicted(self, p: PreparedChat, usage: Usage, output: str) -> None:
        assert p.req.prediction is not None
        count = p.served.engine.count_tokens
        await with_prediction(usage, p.req.prediction.text, p.prediction_tokens, output, count)

    async def _complete(
        self, req: ChatCompletionRequest, served: ServedModel, plan: ToolPlan, bodies: list[Body]
    ) -> ChatCompletion:
        answers = await asyncio.gather(*(self._answer(served, plan, b) for b in bodies))
        choices = []
        reasoning_tokens = 0
        for index, (result, message, finish) in enumerate(answers):
            raw = result["choices"][0]
            if message.reasoning_content:
                reasoning_tokens += await served.engine.count_tokens(message.reasoning_content)
            choices.append(
                ChatChoice(
                    index=index,
                    message=message,
                    finish_reason=finish,
                    logprobs=raw.get("logprobs") if req.logprobs else None,
                )
            )
        results = [result for result, _, _ in answers]
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(results[0].get("created", 0)),
            model=served.spec.id,
            system_fingerprint=served.engine.info.fingerprint,
            choices=choices,
            usage=with_reasoning(merge_usage([r["usage"] for r in results]), reasoning_tokens),
        )

    async def _answer(
        self, served: ServedModel, plan: ToolPlan, body: Body
    ) -> tuple[Body, ChatMessageOut, Any]:
        """One choice: the engine's result, the message it says, its finish reason. An
        ``auto`` answer left with nothing to say is asked again in words."""
        result = await served.engine.chat(body)
        raw = result["choices"][0]
        text = raw["message"].get("content") or ""
        thinking: str | None = None
        if is_reasoning(served.spec):
            thinking = raw["message"].get("reasoning_content")
            if thinking is None:
                thinking, text = split_reasoning(text)
        message, finish = ChatMessageOut(content=text), raw.get("finish_reason")
        if plan.native:
            calls = engine_calls(raw["message"].get("tool_calls"))
            if calls:
                message.tool_calls = calls
                message.content = text or None
                finish = "length" if finish == "length" else "tool_calls"
        elif plan.mode == "words":
            message.content = plan.spoken(text)
        elif plan.mode != "off":
            parsed = parse_output(text, plan.answered)
            words = in_words(body, plan, result["usage"]) if plan.needs_answer(parsed) else None
            if words is not None:
                second = await served.engine.chat(words)
                result = {**second, "usage": added_usage(result["usage"], second["usage"])}
                raw = second["choices"][0]
                message.content = plan.spoken(raw["message"].get("content") or "")
                finish = raw.get("finish_reason")
            elif parsed.tool_calls:  # as streamed (``tool_finish``): a cut reply still says so
                message = ChatMessageOut(tool_calls=parsed.tool_calls)
                finish = "length" if finish == "length" else "tool_calls"
            else:
                message.content = parsed.content
        message.reasoning_content = thinking
        return result, message, finish
