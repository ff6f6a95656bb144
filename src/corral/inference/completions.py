"""Legacy text completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from corral.accounts.metering import Charge
from corral.catalog.registry import ModelRegistry, ServedModel
from corral.core.config import LimitSettings
from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.ids import new_id
from corral.engines.base import Body
from corral.inference.admission import Admission
from corral.inference.prepared import Prepared
from corral.inference.requests import (
    check_context,
    check_count,
    merge_usage,
    refuse_unknown_fields,
    sampling_body,
    seeded,
)
from corral.inference.streaming import merge_indexed
from corral.inference.telemetry import RequestTimer, Telemetry
from corral.protocol.completions import Completion, CompletionChoice, CompletionRequest
from corral.protocol.events import Event, Finish, TextDelta, UsageReport, started

Prompt = str | list[int]


def _prompts(req: CompletionRequest) -> list[Prompt]:
    p = req.prompt
    if isinstance(p, str):
        return [p]
    if p and all(isinstance(x, int) for x in p):
        return [p]  # type: ignore[list-item]
    return list(p)  # type: ignore[arg-type]


def _validate(req: CompletionRequest, limits: LimitSettings, prompts: list[Prompt]) -> None:
    refuse_unknown_fields(req)
    check_count("n", req.n, limits.max_n)
    check_count("prompt", len(prompts), limits.max_prompts)
    if not prompts:  # `[]`: no prompt at all (an empty string is a prompt)
        raise InvalidRequestError("`prompt` must hold at least one prompt.", param="prompt")
    if req.suffix:
        raise UnsupportedParameterError(
            "`suffix` (fill-in-the-middle) is not supported by this model.", param="suffix"
        )
    if req.best_of is not None and req.best_of != req.n:
        raise UnsupportedParameterError(
            "`best_of` other than `n` is not supported.", param="best_of"
        )
    if req.echo and any(not isinstance(p, str) for p in prompts):
        raise UnsupportedParameterError("`echo` needs text prompts, not token ids.", param="echo")
    if req.echo and req.logprobs is not None:
        raise UnsupportedParameterError(
            "`echo` together with `logprobs` is not supported.", param="echo"
        )


def legacy_logprobs(raw: Any, offset: int) -> dict[str, Any] | None:
    """llama.cpp answers in the chat logprobs shape; completions use the legacy one."""
    if not raw:
        return None
    entries = raw.get("content", [])
    tokens, token_logprobs, top, offsets = [], [], [], []
    pos = offset
    for entry in entries:
        tokens.append(entry["token"])
        token_logprobs.append(entry["logprob"])
        top.append({t["token"]: t["logprob"] for t in entry.get("top_logprobs", [])})
        offsets.append(pos)
        pos += len(entry["token"])
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


@dataclass(frozen=True, kw_only=True)
class PreparedCompletion(Prepared):
    req: CompletionRequest
    bodies: list[Body]  # one per prompt and choice
    echoes: list[str]  # the prompt each choice echoes, or ""


class CompletionService:
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

    async def prepare(self, req: CompletionRequest) -> PreparedCompletion:
        """Everything that can be refused is refused here, before metering."""
        prompts = _prompts(req)
        _validate(req, self._limits, prompts)
        served = self._registry.get(req.model)
        base: Body = {**sampling_body(req, self._limits.max_stop)}
        if req.max_tokens is not None:
            base["max_tokens"] = req.max_tokens
        if req.logprobs is not None:
            base["logprobs"] = max(req.logprobs, 1)
        window = served.engine.info.context_window
        bound = 0
        for prompt in prompts:
            bound += await self._check_prompt(served, prompt, req.max_tokens or 0, window)
        max_output = (req.max_tokens or window) * req.n * len(prompts)
        return PreparedCompletion(
            served=served,
            charge=Charge(served.spec, "completions", bound, max_output),
            stream=req.stream,
            want_usage=bool(req.stream_options and req.stream_options.include_usage),
            req=req,
            bodies=[
                seeded({**base, "prompt": prompt}, req.seed, i)
                for prompt in prompts
                for i in range(req.n)
            ],
            echoes=[
                p if req.echo and isinstance(p, str) else "" for p in prompts for _ in range(req.n)
            ],
        )

    async def run(self, p: PreparedCompletion) -> Completion | AsyncIterator[Event]:
        timer = self._telemetry.timer(p.served.spec.id, "completions")
        if not p.stream:
            with self._admission.slot(p.served), timer.cancelled():
                result = await self._complete(p.req, p.served, p.bodies, p.echoes)
            timer.finish(result.usage.model_dump())
            return result
        self._admission.enter(p.served)
        return await started(self._stream(p.req, p.served, p.bodies, p.echoes, timer))

    async def _check_prompt(
        self, served: ServedModel, prompt: Prompt, max_out: int, window: int
    ) -> int:
        """Refuse a prompt over the window; returns its bound in tokens."""
        if isinstance(prompt, list):
            bound = len(prompt)

            async def exact() -> int:
                return bound
        else:
            bound = len(prompt.encode()) + 2
            text = prompt

            async def exact() -> int:
                return await served.engine.count_tokens(text)

        await check_context(window, max_out, bound, exact)
        return bound

    async def _complete(
        self, req: CompletionRequest, served: ServedModel, bodies: list[Body], echoes: list[str]
    ) -> Completion:
        results = await asyncio.gather(*(served.engine.complete(b) for b in bodies))
        choices = []
        for index, (result, echo) in enumerate(zip(results, echoes, strict=True)):
            raw = result["choices"][0]
            choices.append(
                CompletionChoice(
                    index=index,
                    text=echo + raw.get("text", ""),
                    finish_reason=raw.get("finish_reason"),
                    logprobs=legacy_logprobs(raw.get("logprobs"), 0),
                )
            )
        return Completion(
            id=new_id("cmpl"),
            created=int(results[0].get("created", 0)),
            model=served.spec.id,
            system_fingerprint=served.engine.info.fingerprint,
            choices=choices,
            usage=self._usage(req, [r["usage"] for r in results]),
        )

    def _usage(self, req: CompletionRequest, usages: list[dict[str, Any]]) -> Any:
        # Each prompt is billed once, whatever n is.
        per_prompt = [merge_usage(usages[i : i + req.n]) for i in range(0, len(usages), req.n)]
        prompt = sum(u.prompt_tokens for u in per_prompt)
        completion = sum(u.completion_tokens for u in per_prompt)
        usage = per_prompt[0].model_copy()
        usage.prompt_tokens, usage.completion_tokens = prompt, completion
        usage.total_tokens = prompt + completion
        return usage

    async def _stream(
        self,
        req: CompletionRequest,
        served: ServedModel,
        bodies: list[Body],
        echoes: list[str],
        timer: RequestTimer,
    ) -> AsyncGenerator[Event | None, None]:
        """Hand it over ``started``: it says ``None`` first."""
        usages: list[dict[str, Any]] = [{} for _ in bodies]
        status = "error"
        try:
            yield None
            for index, echo in enumerate(echoes):
                if echo:
                    yield TextDelta(echo, index)
            streams = [
                served.engine.complete_stream({**b, "stream_options": {"include_usage": True}})
                for b in bodies
            ]
            single = len(streams) == 1  # iterated as it is: a frame fewer a token
            source: AsyncIterator[Any] = streams[0] if single else merge_indexed(streams)
            async for item in source:
                index, chunk = (0, item) if single else item
                if "usage" in chunk:
                    usages[index] = chunk["usage"]
                    timer.engine_timings(chunk.get("timings"))
                for choice in chunk.get("choices") or ():
                    if text := choice.get("text"):
                        yield TextDelta(text, index, legacy_logprobs(choice.get("logprobs"), 0))
                        timer.token()  # timed once it went out, as in chat
                    if reason := choice.get("finish_reason"):
                        yield Finish(reason, index)
            yield UsageReport(self._usage(req, usages))
            status = "ok"
        finally:
            self._admission.leave(served)
            timer.finish(self._usage(req, usages).model_dump() if usages[0] else None, status)
