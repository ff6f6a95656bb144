"""The one metered path: admit (access, limits, budget), run, settle, count the cost.

Every call that costs its caller goes through a ``Meter``: the API's generation routes
and the jobs (eval runs today; batches and the console's playground to come). What a
call may cost at most (its ``Charge``) is known before it runs: the generation core's
``prepare`` computes it after validating the request, so a request refused as invalid
never reaches ``admit`` and costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel

from corral.accounts.accounting import Accounting, Ticket
from corral.accounts.keys import Principal
from corral.catalog.schema import ModelSpec
from corral.core import logs
from corral.core.errors import CorralError, InsufficientQuotaError, RateLimitError
from corral.protocol.events import Event, Failed, UsageReport, aclose, started
from corral.storage.tables import NANO

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Charge:
    """What a call may cost at most, known before it runs: what admission counts and
    reserves. ``prompt_bound`` is an upper bound on prompt tokens."""

    spec: ModelSpec
    endpoint: str
    prompt_bound: int
    max_output: int
    batch_endpoint: str | None = None  # endpoint "batch": the endpoint its line ran


@dataclass(frozen=True)
class Metered(Generic[R]):
    """An admitted call's outcome: the answer, or its stream (settled when it ends)."""

    result: R | AsyncIterator[Event]
    ticket: Ticket


class Meter:
    def __init__(self, accounting: Accounting, cost: Counter, rejected: Counter) -> None:
        self._accounting = accounting
        self._cost = cost  # corral_cost_usd, by model
        self._rejected = rejected  # corral_rejected, by reason

    async def admit(self, who: Principal, charge: Charge, request_id: str | None = None) -> Ticket:
        """``request_id``: a job's own id for a request it may run again (see
        ``Accounting.admit``)."""
        try:
            ticket = await self._accounting.admit(
                who,
                charge.spec,
                charge.endpoint,
                charge.prompt_bound,
                charge.max_output,
                charge.batch_endpoint,
                request_id,
            )
        except (RateLimitError, InsufficientQuotaError) as exc:
            self._rejected.labels(exc.code or "rate_limit").inc()
            raise
        logs.request_id.set(ticket.request_id)
        return ticket

    async def settle(self, ticket: Ticket, usage: dict[str, Any] | None, status: str) -> int:
        """Settle in line (a job that needs the cost); returns it in nano-dollars."""
        cost = await self._accounting.settle(ticket, usage, status)
        self._count(ticket, cost)
        return cost

    async def release(self, ticket: Ticket) -> None:
        """Let go of a request a job will run again under the same id; bills nothing."""
        await self._accounting.release(ticket)

    def settle_later(self, ticket: Ticket, usage: dict[str, Any] | None, status: str) -> None:
        """Settle in a task of its own: an answer's end does not wait for the database."""
        self._accounting.settle_later(ticket, usage, status, lambda c: self._count(ticket, c))

    def _count(self, ticket: Ticket, cost_nano: int) -> None:
        self._cost.labels(ticket.spec.id).inc(cost_nano / NANO)

    async def run(
        self,
        who: Principal,
        charge: Charge,
        call: Callable[[], Awaitable[R | AsyncIterator[Event]]],
        *,
        want_usage: bool = False,
        check: Callable[[], None] | None = None,
    ) -> Metered[R]:
        """Admit, call, and settle the answer (or, for a stream, when the stream ends).
        ``want_usage``: keep the stream's usage for the caller (it is metered either
        way); ``check``: called between a stream's events, what it raises ends the
        stream (a shutdown's grace period running out)."""
        ticket = await self.admit(who, charge)
        try:
            result = await call()
        except asyncio.CancelledError:
            # The client left (or a job was handed back to run again): no answer, no bill.
            self.settle_later(ticket, None, "cancelled")
            raise
        except BaseException:
            self.settle_later(ticket, None, "error")
            raise
        if isinstance(result, BaseModel):
            usage = getattr(result, "usage", None)
            self.settle_later(ticket, usage.model_dump() if usage is not None else None, "ok")
            return Metered(result, ticket)
        return Metered(await started(self._stream(result, ticket, want_usage, check)), ticket)

    async def _stream(
        self,
        stream: AsyncIterator[Event],
        ticket: Ticket,
        want_usage: bool,
        check: Callable[[], None] | None,
    ) -> AsyncGenerator[Event | None, None]:
        """The one stage between the core and a dialect: usage read by type and settled
        however the stream ends, the shutdown check, and an error after the first event
        turned into ``Failed`` (before it, it raises: an HTTP status can still say so)."""
        usage: dict[str, Any] | None = None
        pieces, status, asked = 0, "cancelled", False
        try:
            yield None  # handed over ``started``: closed, or dropped, it settles
            asked = True  # past here the engine is asked: its prompt is billed
            async for event in stream:
                if check is not None and (cut := _cut(check)) is not None:
                    yield Failed(cut)  # billed as for a client that left: "cancelled"
                    return
                if type(event) is UsageReport:
                    usage = event.usage.model_dump()
                    if not want_usage:
                        continue
                else:
                    pieces += 1
                yield event
            status = "ok"
        except Exception as exc:
            status = "error"
            if not pieces and usage is None:
                raise
            yield Failed(_stream_error(exc))
        finally:
            if usage is None:  # cut short: bill what was generated, an event a token
                prompt = ticket.prompt_estimate if asked else 0  # never read: nothing ran
                usage = {"prompt_tokens": prompt, "completion_tokens": pieces}
            # Settled even when the client is gone.
            self.settle_later(ticket, usage, status)
            # Closed here, not left to the garbage collector's finalizer: a stream cut or
            # left early stops its generation (and returns its connection) at once, each
            # frame's cleanup in order.
            await aclose(stream)


def _cut(check: Callable[[], None]) -> CorralError | None:
    try:
        check()
    except CorralError as exc:
        return exc
    return None


def _stream_error(exc: Exception) -> CorralError:
    if isinstance(exc, CorralError):
        return exc
    log.exception("stream failed", exc_info=exc)
    return CorralError("The server had an error while streaming.")
