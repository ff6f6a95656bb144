"""Chat completions: validation, tool planning, fan-out over choices, streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from corral.accounts.metering import Charge
from corral.catalog.registry import ModelRegistry, ServedModel
from corral.core.config import LimitSettings
from corral.core.errors import InvalidRequestError
from corral.core.ids import new_id
from corral.engines.base import Body
from corral.inference.admission import Admission
from corral.inference.native_tools import engine_calls
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
from corral.inference.tool_stream import ToolStream
from corral.inference.tools import ToolPlan, call_key, parse_output, plan_tools
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
        elif plan.mode != "off":
            parsed = parse_output(text, plan.answered)
            words = in_words(body, plan, result["usage"]) if plan.needs_answer(parsed) else None
            if words is not None:
                second = await served.engine.chat(words)
                result = {**second, "usage": added_usage(result["usage"], second["usage"])}
                raw = second["choices"][0]
                message.content, finish = (
                    raw["message"].get("content") or "",
                    raw.get("finish_reason"),
                )
            elif parsed.tool_calls:  # as streamed (``tool_finish``): a cut reply still says so
                message = ChatMessageOut(tool_calls=parsed.tool_calls)
                finish = "length" if finish == "length" else "tool_calls"
            else:
                message.content = parsed.content
        message.reasoning_content = thinking
        return result, message, finish

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
        tool_states = [ToolText(plan) for _ in bodies]
        extra: list[dict[str, Any]] = [{} for _ in bodies]  # a second pass's usage
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
                if plan.mode == "off" or plan.native:  # the engine parsed any calls
                    token = bool(
                        chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content")
                    )
                    yield stamp.apply(chunk, index)
                    if token:  # timed once it went out: the histograms wait, the client not
                        timer.token()
                    continue
                # Constrained tool output is JSON: its content is said as it is decoded,
                # each call once it is whole (a repeated one is dropped).
                for choice in chunk.get("choices", ()):
                    state = tool_states[index]
                    for delta in state.feed(choice.get("delta", {}).get("content") or ""):
                        yield stamp.chunk([{"index": index, "delta": delta, "finish_reason": None}])
                        timer.token()
                    if not choice.get("finish_reason"):
                        continue
                    spent = {"completion_tokens": state.tokens}  # its usage may come later
                    words = in_words(bodies[index], plan, spent) if state.empty else None
                    if words is None:
                        yield stamp.chunk([state.finish(index, choice["finish_reason"])])
                        continue
                    words["stream_options"] = {"include_usage": True}
                    async for answer in served.engine.chat_stream(words):
                        if "usage" in answer:
                            extra[index] = answer.pop("usage")
                            if not answer.get("choices"):
                                continue
                        yield stamp.apply(answer, index)
                        timer.token()
            # Always sent: the API layer meters it and drops it unless the client asked.
            usages = [added_usage(u, e) if e else u for u, e in zip(usages, extra, strict=True)]
            usage = with_reasoning(merge_usage(usages), reasoning_tokens)
            yield stamp.chunk([], usage=usage.model_dump())
            status = "ok"
        finally:
            self._admission.leave(served)
            timer.finish(merge_usage(usages).model_dump() if usages[0] else None, status)


@dataclass
class ToolText:
    """A choice's constrained output as it streams, said as chat deltas: content as it
    is decoded; a call's name, then its arguments as they are decoded, unless a call of
    that name was already made (in this answer, or with its result in the history):
    such a call is held until whole and sent only if it is not a repeat."""

    plan: ToolPlan
    tokens: int = 0  # llama.cpp streams a token a chunk
    stream: ToolStream = field(default_factory=ToolStream)
    names: dict[int, str] = field(default_factory=dict)
    arguments: dict[int, list[str]] = field(default_factory=dict)
    live: dict[int, int] = field(default_factory=dict)  # streamed calls: their index out
    said: set[tuple[str, str]] = field(default_factory=set)  # ``call_key`` of calls sent
    sent: int = 0
    content: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[dict[str, Any]]:
        self.tokens += 1 if text else 0
        deltas: list[dict[str, Any]] = []
        for piece in self.stream.feed(text):
            if piece.kind == "content":
                self.content.append(piece.text)
                deltas.append({"role": "assistant", "content": piece.text})
            elif piece.kind == "call":
                deltas += self._start(piece.index, piece.text)
            else:
                self.arguments.setdefault(piece.index, []).append(piece.text)
                deltas += self._arguments(piece.index, piece.text)
        return deltas

    def _start(self, index: int, name: str) -> list[dict[str, Any]]:
        self.names[index] = name
        made = {n for n, _ in self.said} | {n for n, _ in self.plan.answered}
        if name in made:
            return []  # held: it may be a repeat
        self.live[index] = self.sent
        return [self._call(name, "")]

    def _arguments(self, index: int, text: str) -> list[dict[str, Any]]:
        arguments = self._whole(index)
        key = None if arguments is None else call_key(self.names[index], arguments)
        if index in self.live:
            if key is not None:
                self.said.add(key)
            call = {"index": self.live[index], "function": {"arguments": text}}
            return [{"role": "assistant", "tool_calls": [call]}]
        if key is None or key in self.said or key in self.plan.answered:
            return []
        self.said.add(key)
        assert arguments is not None
        return [self._call(self.names[index], arguments)]

    def _call(self, name: str, arguments: str) -> dict[str, Any]:
        call = {"index": self.sent, "id": new_id("call"), "type": "function"}
        call["function"] = {"name": name, "arguments": arguments}
        self.sent += 1
        return {"role": "assistant", "tool_calls": [call]}

    def _whole(self, index: int) -> str | None:
        """The call's arguments once they are whole."""
        raw = "".join(self.arguments[index])
        if not raw.endswith("}"):
            return None
        try:
            return json.dumps(json.loads(raw))
        except ValueError:
            return None  # an inner object closed, not the arguments

    @property
    def empty(self) -> bool:
        """``auto`` said nothing: no call and no words (see ``ToolPlan.needs_answer``)."""
        return self.plan.mode == "auto" and not self.sent and not "".join(self.content).strip()

    def finish(self, index: int, reason: str) -> dict[str, Any]:
        """The choice's end: ``tool_calls`` when it called, unless it was cut short."""
        called = self.sent and reason != "length"
        return {"index": index, "delta": {}, "finish_reason": "tool_calls" if called else reason}


def in_words(body: Body, plan: ToolPlan, spent: dict[str, Any]) -> Body | None:
    """The request again, without the grammar or the tools prompt, with what is left of
    its output budget (None when nothing is)."""
    words = {k: v for k, v in body.items() if k != "response_format"}
    words["messages"] = plan.plain
    if "max_tokens" in body:
        left = int(body["max_tokens"]) - int(spent.get("completion_tokens", 0))
        if left <= 0:
            return None
        words["max_tokens"] = left
    return words


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
