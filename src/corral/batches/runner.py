"""One request of a batch, checked and run through the same services as the API: the
endpoint's ``prepare`` (every check a live request gets), then the meter under the
batch's principal at the batch price (usage rows with endpoint ``batch``), then ``run``.
A request the service refuses is a failed line; a full server or a rate limit is waited
out; a project past its budget stops the batch (``BudgetExhausted``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from corral.accounts.accounting import BATCH
from corral.accounts.keys import Principal
from corral.accounts.metering import Meter
from corral.core.errors import (
    CorralError,
    InsufficientQuotaError,
    OverloadedError,
    RateLimitError,
)
from corral.core.field_errors import invalid_field, strictly
from corral.inference.chat import ChatService
from corral.inference.completions import CompletionService
from corral.inference.embeddings import EmbeddingService
from corral.inference.prepared import Prepared
from corral.inference.responses.service import PreparedResponse, ResponseService
from corral.protocol.chat import ChatCompletion, ChatCompletionRequest
from corral.protocol.completions import CompletionRequest
from corral.protocol.embeddings import EmbeddingRequest
from corral.protocol.responses import ResponseRequest

R = TypeVar("R")
RETRY_FOR_S = 600.0  # how long a line waits out rate limits and a full server


class BudgetExhausted(Exception):
    """The batch's project has no budget left: the rest of the batch is not run."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int
    body: dict[str, Any]  # the answer, or {"error": …}
    request_id: str | None = None


def refused(exc: CorralError) -> Outcome:
    return Outcome(False, exc.status, exc.to_dict())


async def _retrying(call: Callable[[], Awaitable[R]]) -> R:
    deadline = asyncio.get_running_loop().time() + RETRY_FOR_S
    while True:
        try:
            return await call()
        except (RateLimitError, OverloadedError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            wait = float(exc.headers.get("retry-after", "1") or 1)
            await asyncio.sleep(min(max(wait, 0.05), 5.0))


class LineRunner:
    def __init__(
        self,
        chat: ChatService,
        completions: CompletionService,
        embeddings: EmbeddingService,
        responses: ResponseService,
        meter: Meter,
    ) -> None:
        self._chat = chat
        self._completions = completions
        self._embeddings = embeddings
        self._responses = responses
        self._meter = meter

    async def prepare(self, endpoint: str, body: dict[str, Any], scope: str) -> Prepared:
        """The endpoint service's own checks; raises what it would answer a request."""
        try:
            if endpoint == "/v1/chat/completions":
                return await self._chat.prepare(strictly(ChatCompletionRequest, body))
            if endpoint == "/v1/completions":
                return await self._completions.prepare(strictly(CompletionRequest, body))
            if endpoint == "/v1/embeddings":
                return await self._embeddings.prepare(strictly(EmbeddingRequest, body))
            return await self._responses.prepare(strictly(ResponseRequest, body), scope)
        except ValidationError as exc:
            raise invalid_field(exc.errors()) from None

    async def _call(self, endpoint: str, prepared: Prepared) -> BaseModel:
        if isinstance(prepared, PreparedResponse):
            completion = await self._responses.run(prepared)
            assert isinstance(completion, ChatCompletion)  # a batch request never streams
            return await self._responses.finish(prepared, completion)
        services: dict[str, Any] = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
        }
        result = await services[endpoint].run(prepared)
        assert isinstance(result, BaseModel)
        return result

    async def run(
        self, who: Principal, endpoint: str, body: dict[str, Any], scope: str, request_id: str
    ) -> Outcome:
        """``request_id``: the line's own (``line_request_id``), the same on every run of
        it, so a line run again after a crash is billed once."""
        try:
            prepared = await self.prepare(endpoint, body, scope)
        except CorralError as exc:
            return refused(exc)
        # Billed at the batch price point; the row still says which endpoint ran.
        charge = replace(prepared.charge, endpoint=BATCH, batch_endpoint=prepared.charge.endpoint)
        try:
            ticket = await _retrying(lambda: self._meter.admit(who, charge, request_id))
        except InsufficientQuotaError as exc:
            raise BudgetExhausted(exc.message) from exc
        except CorralError as exc:  # no access to the model, a limit that did not lift
            return refused(exc)
        try:
            result = await _retrying(lambda: self._call(endpoint, prepared))
        except asyncio.CancelledError:
            # Handed back (shutdown) or stopped (cancel, expiry): a line handed back runs
            # again under this id, and that run's usage row must be the one that bills.
            with anyio.CancelScope(shield=True):
                await self._meter.release(ticket)
            raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._meter.settle(ticket, None, "error")
            if isinstance(exc, CorralError):
                return refused(exc)
            raise
        await self._meter.settle(ticket, _usage_of(getattr(result, "usage", None)), "ok")
        return Outcome(True, 200, result.model_dump(mode="json"), ticket.request_id)


def line_request_id(batch_id: str, index: int) -> str:
    """A batch line's request id: its usage row's key, the same on every run of it."""
    return f"req_{batch_id}_{index}"


def _usage_of(usage: Any) -> dict[str, Any] | None:
    """Chat's usage words for the meter (a response's usage is in the Responses API's)."""
    if usage is None:
        return None
    data: dict[str, Any] = usage.model_dump()
    if "input_tokens" in data:
        cached = (data.get("input_tokens_details") or {}).get("cached_tokens", 0)
        return {
            "prompt_tokens": data["input_tokens"],
            "completion_tokens": data["output_tokens"],
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    return data
