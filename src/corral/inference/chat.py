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
from corral.inference.prediction import check_prediction, prediction_tokens, with_prediction
from corral.inference.prepared import Prepared
from corral.inference.reasoning import (
    StreamSplitter,
    check_effort,
    is_reasoning,
    split_reasoning,
    thinking_budget,
)
from corral.inference.requests import (
    check_context,
    check_count,
    fit_output,
    merge_usage,
    refuse_unknown_fields,
    sampling_body,
    seeded,
)
from corral.inference.stops import scan_stops
from corral.inference.streaming import Chunk, ChunkStamp, merge_indexed
from corral.inference.telemetry import RequestTimer, Telemetry
from corral.inference.tool_stream import Piece, ToolStream
from corral.inference.tools import ToolPlan, parse_output, plan_tools
from corral.protocol.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    NamedToolChoice,
)
from corral.protocol.common import Usage

TEMPLATE_OVERHEAD_PER_MESSAGE = 16
TEMPLATE_OVERHEAD = 64


def _validate(req: ChatCompletionRequest, limits: LimitSettings) -> None:
    refuse_unknown_fields(req)
    check_count("n", req.n, limits.max_n)
    check_prediction(req)
    check_count("messages", len(req.messages), limits.max_messages)
    check_count("tools", len(req.tools or []), limits.max_tools)
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
    if plan.response_format is not None:
        body["response_format"] = plan.response_format
    elif req.response_format is not None and req.response_format.type != "text":
        body["response_format"] = req.response_format.model_dump(by_alias=True, exclude_none=True)
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
        plan = plan_tools(req)
        body = _engine_body(req, plan, self._limits)
        window = served.engine.info.context_window
        prompt_bound = _prompt_bound(plan.messages) + len(
            json.dumps(body.get("response_format", ""))
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
        body = _engine_body(req, plan_tools(req), self._limits)
        return await served.engine.count_chat_tokens(body)

    async def run(self, p: PreparedChat) -> ChatCompletion | AsyncIterator[Chunk]:
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
        stream = self._stream(p.req, p.served, p.plan, p.bodies, timer, p.stops)
        return stream if p.req.prediction is None else self._stream_predicted(p, stream)

    async def _predicted(self, p: PreparedChat, usage: Usage, output: str) -> None:
        assert p.req.prediction is not None
        count = p.served.engine.count_tokens
        await with_prediction(usage, p.req.prediction.text, p.prediction_tokens, output, count)

    async def _stream_predicted(
        self, p: PreparedChat, stream: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        """The stream, with the prediction's tokens in its usage chunk (one choice: a
        prediction refuses ``n`` > 1)."""
        output: list[str] = []
        async for chunk in stream:
            if "usage" in chunk and not chunk.get("choices"):
                usage = Usage.model_validate(chunk["usage"])
                await self._predicted(p, usage, "".join(output))
                chunk["usage"] = usage.model_dump()
            for choice in chunk.get("choices", ()):
                output.append(choice.get("delta", {}).get("content") or "")
            yield chunk

    async def _complete(
        self, req: ChatCompletionRequest, served: ServedModel, plan: ToolPlan, bodies: list[Body]
    ) -> ChatCompletion:
        results = await asyncio.gather(*(served.engine.chat(b) for b in bodies))
        choices = []
        reasoning_tokens = 0
        for index, result in enumerate(results):
            raw = result["choices"][0]
            text = raw["message"].get("content") or ""
            thinking: str | None = None
            if is_reasoning(served.spec):
                thinking = raw["message"].get("reasoning_content")
                if thinking is None:
                    thinking, text = split_reasoning(text)
                if thinking:
                    reasoning_tokens += await served.engine.count_tokens(thinking)
            message, finish = _message(text, raw, plan)
            if thinking is not None:
                message.reasoning_content = thinking
            choices.append(
                ChatChoice(
                    index=index,
                    message=message,
                    finish_reason=finish,
                    logprobs=raw.get("logprobs") if req.logprobs else None,
                )
            )
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(results[0].get("created", 0)),
            model=served.spec.id,
            system_fingerprint=served.engine.info.fingerprint,
            choices=choices,
            usage=with_reasoning(merge_usage([r["usage"] for r in results]), reasoning_tokens),
        )

    async def _stream(
        self,
        req: ChatCompletionRequest,
        served: ServedModel,
        plan: ToolPlan,
        bodies: list[Body],
        timer: RequestTimer,
        stops: list[str] | None = None,
    ) -> AsyncIterator[Chunk]:
        stamp = ChunkStamp(
            new_id("chatcmpl"),
            "chat.completion.chunk",
            served.spec.id,
            served.engine.info.fingerprint,
        )
        streams = [
            served.engine.chat_stream({**b, "stream_options": {"include_usage": True}})
            for b in bodies
        ]
        if stops:
            count = served.engine.count_chat_tokens
            pairs = zip(streams, bodies, strict=True)
            streams = [scan_stops(s, stops, partial(count, b)) for s, b in pairs]
        usages: list[dict[str, Any]] = [{} for _ in bodies]
        tool_streams = [ToolStream() for _ in bodies]
        call_ids: list[list[str]] = [[] for _ in bodies]
        splitters = [StreamSplitter() for _ in bodies] if is_reasoning(served.spec) else None
        reasoning_tokens = 0
        status = "error"
        try:
            async for index, chunk in merge_indexed(streams):
                if "usage" in chunk:
                    usages[index] = chunk.pop("usage")
                    timer.engine_timings(chunk.get("timings"))
                    if not chunk.get("choices"):
                        continue
                if splitters is not None:
                    reasoning_tokens += split_chunk(chunk, splitters[index])
                if plan.mode == "off":
                    token = bool(
                        chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content")
                    )
                    yield stamp.apply(chunk, index)
                    if token:  # timed once it went out: the histograms wait, the client not
                        timer.token()
                    continue
                # Constrained tool output is JSON: say what it says as it is decoded.
                for choice in chunk.get("choices", ()):
                    stream = tool_streams[index]
                    pieces = stream.feed(choice.get("delta", {}).get("content") or "")
                    for delta in tool_deltas(pieces, call_ids[index]):
                        yield stamp.chunk([{"index": index, "delta": delta, "finish_reason": None}])
                        timer.token()
                    if choice.get("finish_reason"):
                        yield stamp.chunk([tool_finish(index, choice["finish_reason"], stream)])
            # Always sent: the API layer meters it and drops it unless the client asked.
            usage = with_reasoning(merge_usage(usages), reasoning_tokens)
            yield stamp.chunk([], usage=usage.model_dump())
            status = "ok"
        finally:
            self._admission.leave(served)
            timer.finish(merge_usage(usages).model_dump() if usages[0] else None, status)


def _message(text: str, raw: Body, plan: ToolPlan) -> tuple[ChatMessageOut, Any]:
    finish = raw.get("finish_reason")
    if plan.mode == "off":
        return ChatMessageOut(content=text), finish
    parsed = parse_output(text)
    if parsed.tool_calls:  # as streamed (``tool_finish``): a cut reply still says so
        return ChatMessageOut(tool_calls=parsed.tool_calls), (
            "length" if finish == "length" else "tool_calls"
        )
    return ChatMessageOut(content=parsed.content), finish


def tool_deltas(pieces: list[Piece], ids: list[str]) -> list[dict[str, Any]]:
    """Chat deltas for what the tool output said so far: content, a call's start (id,
    name), its arguments' JSON piece by piece, as OpenAI streams them."""
    deltas: list[dict[str, Any]] = []
    for piece in pieces:
        delta: dict[str, Any] = {"role": "assistant"}
        if piece.kind == "content":
            delta["content"] = piece.text
        elif piece.kind == "call":
            ids.append(new_id("call"))
            function = {"name": piece.text, "arguments": ""}
            call = {"index": piece.index, "id": ids[-1], "type": "function", "function": function}
            delta["tool_calls"] = [call]
        else:
            arguments = {"index": piece.index, "function": {"arguments": piece.text}}
            delta["tool_calls"] = [arguments]
        deltas.append(delta)
    return deltas


def tool_finish(index: int, finish: str, stream: ToolStream) -> dict[str, Any]:
    """The choice's end: ``tool_calls`` when it called, unless it was cut short."""
    reason = "tool_calls" if stream.calls and finish != "length" else finish
    return {"index": index, "delta": {}, "finish_reason": reason}


def with_reasoning(usage: Usage, reasoning_tokens: int) -> Usage:
    usage.completion_tokens_details.reasoning_tokens = reasoning_tokens
    return usage


def split_chunk(chunk: Chunk, splitter: StreamSplitter) -> int:
    """Move thinking in a content delta to ``reasoning_content``; returns reasoning tokens
    in this chunk (llama.cpp streams one token per chunk)."""
    tokens = 0
    for choice in chunk.get("choices", ()):
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            tokens += 1  # already split by llama.cpp
            continue
        text = delta.get("content")
        parts = splitter.feed(text) if text else []
        if choice.get("finish_reason"):
            parts += splitter.flush()
        if not text and not parts:
            continue
        delta.pop("content", None)
        thinking = "".join(t for kind, t in parts if kind == "reasoning")
        answer = "".join(t for kind, t in parts if kind == "content")
        if thinking:
            delta["reasoning_content"] = thinking
            tokens += 1
        if answer:
            delta["content"] = answer
        choice["delta"] = delta
    return tokens
