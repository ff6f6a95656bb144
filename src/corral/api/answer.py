"""A prepared generation answered over HTTP: Idempotency-Key replay, the meter, JSON or SSE.

The metering itself (admit, settle, cost) is ``accounts.metering``; this is the HTTP
around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from corral.accounts.idempotency import request_hash
from corral.api.auth import principal_of
from corral.api.deps import Services
from corral.api.sse import sse_response
from corral.inference.prepared import Prepared

P = TypeVar("P", bound=Prepared)
Run = Callable[[P], Awaitable[BaseModel | AsyncIterator[dict[str, Any]]]]


async def answer(
    request: Request, services: Services, raw: bytes, prepared: P, run: Run[P]
) -> Response:
    """Meter and run a request ``prepare`` accepted; replay or record an Idempotency-Key."""
    key = request.headers.get("idempotency-key")
    if key is None or prepared.stream:  # streams are not stored, so not replayed
        return await _answer(request, services, prepared, run)
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
        response = await _answer(request, services, prepared, run)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await services.idempotency.abandon(scope, key)
        raise
    await services.idempotency.finish(
        scope, key, response.status_code, bytes(response.body).decode()
    )
    return response


async def _answer(request: Request, services: Services, prepared: P, run: Run[P]) -> Response:
    metered = await services.meter.run(
        principal_of(request),
        prepared.charge,
        lambda: run(prepared),
        want_usage=prepared.want_usage,
    )
    headers = {**prepared.served.headers, **metered.ticket.headers()}
    if isinstance(metered.result, BaseModel):
        body = metered.result.model_dump_json()
        return Response(body, media_type="application/json", headers=headers)
    response = await sse_response(metered.result)
    response.headers.update(headers)
    return response
