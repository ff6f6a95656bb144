"""A prepared generation answered over HTTP: Idempotency-Key replay, the meter, JSON or SSE.

The metering itself (admit, settle, cost) is ``accounts.metering``; this is the HTTP
around it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from corral.accounts.idempotency import request_hash
from corral.accounts.keys import Principal
from corral.accounts.metering import Metered
from corral.api.auth import principal_of
from corral.api.deps import Services
from corral.api.sse import event_stream
from corral.inference.chunks import ChatChunks, CompletionChunks
from corral.inference.completions import PreparedCompletion
from corral.inference.prepared import Prepared
from corral.protocol.events import Event

P = TypeVar("P", bound=Prepared)
T = TypeVar("T")
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never read by anyone
Run = Callable[[P], Awaitable[BaseModel | AsyncIterator[Event]]]
# How a dialect answers with what the core produced: JSON, or its kind of event stream.
Present = Callable[[P, Metered[Any]], Awaitable[Response]]


async def openai_chat(prepared: Prepared, metered: Metered[Any]) -> Response:
    """Chat Completions' (and legacy completions', embeddings') answer: the core's own
    object, or its events as chunks."""
    if isinstance(metered.result, BaseModel):
        return Response(metered.result.model_dump_json(), media_type="application/json")
    kind = CompletionChunks if isinstance(prepared, PreparedCompletion) else ChatChunks
    chunks = kind(prepared.served.spec.id, prepared.served.engine.info.fingerprint)
    return await event_stream(metered.result, chunks, typed=False)


async def answer(
    request: Request,
    services: Services,
    raw: bytes,
    prepared: P,
    run: Run[P],
    present: Present[P] = openai_chat,
) -> Response:
    """Meter and run a request ``prepare`` accepted, answer in the dialect's shape
    (``present``); replay or record an Idempotency-Key."""
    key = request.headers.get("idempotency-key")
    if key is None or prepared.stream:  # streams are not stored, so not replayed
        return await _answer(request, services, prepared, run, present)
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
        response = await _answer(request, services, prepared, run, present)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await services.idempotency.abandon(scope, key)
        raise
    await services.idempotency.finish(
        scope, key, response.status_code, bytes(response.body).decode()
    )
    return response


async def _answer(
    request: Request, services: Services, prepared: P, run: Run[P], present: Present[P]
) -> Response:
    # Until its answer starts, nothing else notices a client that left: a whole answer
    # waits for the generation, a stream for its first chunk, which after a long prompt
    # (an agent's 10K tokens on a CPU) is minutes of prefill. Once a stream has started,
    # the SSE response listens for the disconnect itself.
    work = _produce(principal_of(request), services, prepared, run, present)
    response = await _unless_disconnected(request, work)
    return Response(status_code=CLIENT_CLOSED) if response is None else response


async def _produce(
    who: Principal, services: Services, prepared: P, run: Run[P], present: Present[P]
) -> Response:
    # A stream is cut, with an error event, if a shutdown's grace period runs out.
    metered = await services.meter.run(
        who,
        prepared.charge,
        lambda: run(prepared),
        want_usage=prepared.want_usage,
        check=services.drain.check,
    )
    response = await present(prepared, metered)
    response.headers.update({**prepared.served.headers, **metered.ticket.headers()})
    return response


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None once the client has disconnected (``work`` cancelled:
    the engine drops the generation and the meter bills what it knows)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():  # the client left, or this handler itself was cancelled
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gone.cancel()
    return None if task.cancelled() else task.result()


async def _disconnected(request: Request) -> None:
    # The body was read whole before this, so the next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
