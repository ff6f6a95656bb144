"""Admission, settlement and idempotency around the metered endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from corral.accounts.accounting import Ticket
from corral.accounts.idempotency import request_hash
from corral.accounts.keys import ANONYMOUS, Principal
from corral.api.deps import Services
from corral.api.sse import sse_response
from corral.catalog.schema import ModelSpec
from corral.core import logs
from corral.core.errors import InsufficientQuotaError, RateLimitError
from corral.storage.tables import NANO

Run = Callable[[], Awaitable[BaseModel | AsyncIterator[dict[str, Any]]]]


def _charger(services: Services, ticket: Ticket) -> Callable[[int], None]:
    """What a settlement calls with the request's cost: the cost counter, in dollars."""
    return lambda cost_nano: services.telemetry.cost.labels(ticket.spec.id).inc(cost_nano / NANO)


def principal_of(request: Request) -> Principal:
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


async def _metered_stream(
    stream: AsyncIterator[dict[str, Any]],
    ticket: Ticket,
    services: Services,
    want_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    usage: dict[str, Any] | None = None
    pieces, status = 0, "cancelled"
    try:
        async for chunk in stream:
            if "usage" in chunk and not chunk.get("choices"):
                usage = chunk["usage"]
                if not want_usage:
                    continue
            pieces += len(chunk.get("choices") or ())
            yield chunk
        status = "ok"
    except Exception:
        status = "error"
        raise
    finally:
        if usage is None:  # cut short: bill what was generated, one chunk a token
            usage = {"prompt_tokens": ticket.prompt_estimate, "completion_tokens": pieces}
        # A task of its own: settled even when the client is gone, and the stream's end
        # does not wait for the database.
        services.accounting.settle_later(ticket, usage, status, _charger(services, ticket))


async def metered(
    request: Request,
    services: Services,
    *,
    raw: bytes,
    spec: ModelSpec,
    endpoint: str,
    stream: bool,
    prompt_bound: int,
    max_output: int,
    want_usage: bool,
    run: Run,
) -> Response:
    """Admit (limits, budget), run, settle; replay or record an Idempotency-Key."""
    key = request.headers.get("idempotency-key")
    if key is None or stream:  # streams are not stored, so not replayed
        return await _metered(
            request, services, spec, endpoint, prompt_bound, max_output, want_usage, run
        )
    scope = principal_of(request).project_id or "-"
    stored = await services.idempotency.begin(scope, key, request_hash(raw))
    if stored is not None:
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"idempotent-replayed": "true"},
        )
    try:
        response = await _metered(
            request, services, spec, endpoint, prompt_bound, max_output, want_usage, run
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await services.idempotency.abandon(scope, key)
        raise
    await services.idempotency.finish(
        scope, key, response.status_code, bytes(response.body).decode()
    )
    return response


async def _metered(
    request: Request,
    services: Services,
    spec: ModelSpec,
    endpoint: str,
    prompt_bound: int,
    max_output: int,
    want_usage: bool,
    run: Run,
) -> Response:
    try:
        ticket = await services.accounting.admit(
            principal_of(request), spec, endpoint, prompt_bound, max_output
        )
    except (RateLimitError, InsufficientQuotaError) as exc:
        services.telemetry.rejected.labels(exc.code or "rate_limit").inc()
        raise
    logs.request_id.set(ticket.request_id)
    try:
        result = await run()
    except BaseException:
        services.accounting.settle_later(ticket, None, "error", _charger(services, ticket))
        raise
    if isinstance(result, BaseModel):
        usage = getattr(result, "usage", None)
        usage_dict = usage.model_dump() if usage is not None else None
        services.accounting.settle_later(ticket, usage_dict, "ok", _charger(services, ticket))
        return Response(
            result.model_dump_json(), media_type="application/json", headers=ticket.headers()
        )
    response = await sse_response(_metered_stream(result, ticket, services, want_usage))
    response.headers.update(ticket.headers())
    return response
