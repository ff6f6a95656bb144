"""Limits, budgets and usage on SQLite and PostgreSQL, with real concurrency."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from corral.accounts.accounting import Accounting, Ticket, cost_nano
from corral.accounts.keys import KeyService, Principal
from corral.accounts.limits import RateLimiter
from corral.accounts.usage import UsageService, Window
from corral.catalog.schema import ModelSpec
from corral.core.errors import InsufficientQuotaError, PermissionDeniedError, RateLimitError
from corral.storage.db import Database, upgrade
from corral.storage.tables import NANO, Spend, Usage

SPEC = ModelSpec(
    id="m-2024-01-01",
    path=Path("/nonexistent"),
    owned_by="t",
    description="",
    price_input_per_m=1.0,
    price_cached_input_per_m=0.5,
    price_output_per_m=2.0,
)


@pytest.fixture
async def setup(db_url: str) -> AsyncIterator[tuple[Database, KeyService, Accounting]]:
    upgrade(db_url)
    db = Database(db_url)
    yield db, KeyService(db, b"s", None), Accounting(db, RateLimiter(db), 900)
    await db.close()


async def principal(keys: KeyService, **project: object) -> Principal:
    p = await keys.create_project(f"p{random.randrange(10**9)}", **project)  # type: ignore[arg-type]
    created = await keys.create_key(p.id)
    return await keys.authenticate(f"Bearer {created.key}")


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, object]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def test_cost_in_nano_dollars() -> None:
    # 1M input at $1, 1M cached at $0.5, 1M output at $2
    assert cost_nano(SPEC, 2_000_000, 1_000_000, 1_000_000) == round(3.5 * NANO)
    assert cost_nano(SPEC, 10, 0, 5) == 20_000  # 10e-6 + 10e-6 USD


@pytest.fixture
def one_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter's clock stands still mid-window: a test that ran across a minute's
    end saw its window roll over and its last request admitted."""
    from types import SimpleNamespace

    from corral.accounts import limits

    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))


@pytest.mark.usefixtures("one_minute")
async def test_requests_per_minute(setup: tuple[Database, KeyService, Accounting]) -> None:
    _, keys, accounting = setup
    who = await principal(keys, rpm=3)
    remaining = []
    for _ in range(3):
        ticket = await accounting.admit(who, SPEC, "chat", 40, 10)
        remaining.append(ticket.headers()["x-ratelimit-remaining-requests"])
        await accounting.settle(ticket, usage(10, 10), "ok")
    assert remaining == ["2", "1", "0"]
    assert ticket.headers()["x-ratelimit-limit-requests"] == "3"
    assert ticket.headers()["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(RateLimitError) as err:
        await accounting.admit(who, SPEC, "chat", 40, 10)
    assert err.value.status == 429
    assert 1 <= int(err.value.headers["retry-after"]) <= 60


@pytest.mark.usefixtures("one_minute")
async def test_tokens_per_minute(setup: tuple[Database, KeyService, Accounting]) -> None:
    _, keys, accounting = setup
    who = await principal(keys, tpm=100)
    ticket = await accounting.admit(who, SPEC, "chat", 200, 10)  # estimate 50
    await accounting.settle(ticket, usage(60, 30), "ok")  # reconciled to 90
    with pytest.raises(RateLimitError, match="tokens"):
        await accounting.admit(who, SPEC, "chat", 200, 10)  # 90 + 50 > 100


async def test_key_limited_to_models(setup: tuple[Database, KeyService, Accounting]) -> None:
    _, keys, accounting = setup
    who = replace(await principal(keys), allowed_models=("other",))
    with pytest.raises(PermissionDeniedError):
        await accounting.admit(who, SPEC, "chat", 10, 10)


async def test_concurrency_cap(setup: tuple[Database, KeyService, Accounting]) -> None:
    _, keys, accounting = setup
    who = await principal(keys, max_concurrent=1)
    first = await accounting.admit(who, SPEC, "chat", 10, 10)
    with pytest.raises(RateLimitError, match="concurrent"):
        await accounting.admit(who, SPEC, "chat", 10, 10)
    await accounting.settle(first, usage(1, 1), "ok")
    await accounting.settle(await accounting.admit(who, SPEC, "chat", 10, 10), None, "ok")


async def settle_now_or_later(
    accounting: Accounting, later: bool, ticket: Ticket, used: dict[str, object]
) -> None:
    if later:
        accounting.settle_later(ticket, used, "ok", lambda cost: None)
    else:
        await accounting.settle(ticket, used, "ok")


@pytest.mark.parametrize("later", [False, True], ids=["in-line", "later"])
async def test_budget_holds_under_200_concurrent_requests(
    setup: tuple[Database, KeyService, Accounting], later: bool
) -> None:
    """Settled in line or by a task after the response (the API's way): a budget is
    never passed by more than one reservation, and every charge has its usage row."""
    db, keys, accounting = setup
    # Each request reserves at most 400 prompt + 100 output tokens = $0.0006.
    budget_usd = 0.03  # room for ~50 reservations, not 200
    who = await principal(keys, budget_usd=budget_usd)
    reservation = cost_nano(SPEC, 400, 0, 100)
    rng = random.Random(7)
    admitted, refused = 0, 0

    async def one() -> None:
        nonlocal admitted, refused
        try:
            ticket = await accounting.admit(who, SPEC, "chat", 400, 100)
        except InsufficientQuotaError as exc:
            assert exc.headers["x-should-retry"] == "false"
            refused += 1
            return
        admitted += 1
        await asyncio.sleep(rng.random() / 50)
        used = usage(rng.randint(50, 400), rng.randint(1, 100))
        await settle_now_or_later(accounting, later, ticket, used)

    await asyncio.gather(*(one() for _ in range(200)))
    await accounting.settled()
    async with db.session() as s:
        spend = (await s.scalars(select(Spend).where(Spend.project_id == who.project_id))).one()
        charged = await s.scalar(
            select(func.sum(Usage.cost_nano)).where(Usage.project_id == who.project_id)
        )
        rows = await s.scalar(
            select(func.count()).select_from(Usage).where(Usage.project_id == who.project_id)
        )
    assert admitted + refused == 200 and refused > 0 and admitted > 0
    assert spend.spent_nano <= budget_usd * NANO + reservation
    assert spend.reserved_nano == 0  # every reservation was settled
    assert charged == spend.spent_nano  # usage rows sum to what was charged
    assert rows == admitted


async def test_usage_and_costs_reports_match_charges(
    setup: tuple[Database, KeyService, Accounting],
) -> None:
    db, keys, accounting = setup
    who = await principal(keys)
    for prompt, completion in ((10, 5), (20, 7), (30, 9)):
        ticket = await accounting.admit(who, SPEC, "chat", 100, 10)
        await accounting.settle(ticket, usage(prompt, completion), "ok")
    reports = UsageService(db)
    import time

    window = Window.parse(int(time.time()) - 3600, None, "1d", 2)
    page = await reports.completions(window, ["model"], [who.project_id or ""])
    results = [r for b in page["data"] for r in b["results"]]
    assert sum(r["input_tokens"] for r in results) == 60
    assert sum(r["output_tokens"] for r in results) == 21
    assert sum(r["num_model_requests"] for r in results) == 3
    assert {r["model"] for r in results} == {SPEC.id}
    costs = await reports.costs(window, ["project_id"], [who.project_id or ""])
    total = sum(r["amount"]["value"] for b in costs["data"] for r in b["results"])
    expected = sum(cost_nano(SPEC, p, 0, c) for p, c in ((10, 5), (20, 7), (30, 9))) / NANO
    assert total == pytest.approx(expected, abs=1e-12)


async def test_settling_later_frees_the_slot_at_once_and_reports_wait_for_it(
    setup: tuple[Database, KeyService, Accounting],
) -> None:
    db, keys, accounting = setup
    who = await principal(keys, max_concurrent=1)
    charged: list[int] = []
    for prompt, completion in ((10, 5), (20, 7)):
        ticket = await accounting.admit(who, SPEC, "chat", 100, 10)
        accounting.settle_later(ticket, usage(prompt, completion), "ok", charged.append)
        accounting.settle_later(ticket, usage(prompt, completion), "ok", charged.append)  # no-op
    # The second admission above found the first's slot free without awaiting its row.
    import time

    window = Window.parse(int(time.time()) - 3600, None, "1d", 2)
    page = await UsageService(db, accounting.settled).completions(
        window, ["model"], [who.project_id or ""]
    )
    assert sum(r["num_model_requests"] for b in page["data"] for r in b["results"]) == 2
    assert charged == [cost_nano(SPEC, 10, 0, 5), cost_nano(SPEC, 20, 0, 7)]


async def test_a_failed_settlement_is_logged_not_raised(
    setup: tuple[Database, KeyService, Accounting],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, keys, accounting = setup
    ticket = await accounting.admit(await principal(keys), SPEC, "chat", 100, 10)

    async def broken(*_: object) -> int:
        raise RuntimeError("database gone")

    monkeypatch.setattr(accounting, "_record", broken)
    accounting.settle_later(ticket, usage(1, 1), "ok", lambda cost: None)
    await accounting.settled()
    assert f"settling {ticket.request_id} failed" in caplog.text


async def test_settling_twice_bills_once(setup: tuple[Database, KeyService, Accounting]) -> None:
    db, keys, accounting = setup
    who = await principal(keys, budget_usd=1.0)
    ticket = await accounting.admit(who, SPEC, "chat", 100, 10)
    await accounting.settle(ticket, usage(10, 5), "ok")
    await accounting.settle(ticket, usage(10, 5), "ok")
    ticket.settled = False  # a retry of the same request id after a crash
    await accounting.settle(ticket, usage(10, 5), "ok")
    async with db.session() as s:
        n = await s.scalar(select(func.count()).where(Usage.request_id == ticket.request_id))
        spend = (await s.scalars(select(Spend).where(Spend.project_id == who.project_id))).one()
    assert n == 1
    assert spend.spent_nano == cost_nano(SPEC, 10, 0, 5)


async def test_a_job_request_run_again_after_a_crash_is_billed_once(
    setup: tuple[Database, KeyService, Accounting],
) -> None:
    db, keys, accounting = setup
    who = await principal(keys, budget_usd=1.0)
    rid = "req_batch_x_7"
    await accounting.admit(who, SPEC, "batch", 100, 10, request_id=rid)  # killed: no settle
    first = await accounting.admit(who, SPEC, "batch", 100, 10, request_id=rid)
    await accounting.settle(first, usage(10, 5), "ok")  # killed before the job recorded it
    again = await accounting.admit(who, SPEC, "batch", 100, 10, request_id=rid)
    handed_back = await accounting.admit(who, SPEC, "batch", 100, 10, request_id=rid + "1")
    await accounting.release(handed_back)
    assert await accounting.settle(again, usage(10, 6), "ok") == 0
    async with db.session() as s:
        rows = (await s.scalars(select(Usage).where(Usage.project_id == who.project_id))).all()
        spend = (await s.scalars(select(Spend).where(Spend.project_id == who.project_id))).one()
    assert [(r.request_id, r.completion_tokens) for r in rows] == [(rid, 5)]
    assert spend.reserved_nano == 0  # the crash's reservation freed by the retry's admit
    assert spend.spent_nano == cost_nano(SPEC, 10, 0, 5, batch=True)


async def test_stale_reservations_are_swept(setup: tuple[Database, KeyService, Accounting]) -> None:
    db, keys, _ = setup
    accounting = Accounting(db, RateLimiter(db), reservation_ttl_s=-1)  # expire at once
    who = await principal(keys, budget_usd=1.0)
    for _ in range(3):
        await accounting.admit(who, SPEC, "chat", 100, 10)  # never settled: a crash
    settled = await accounting.admit(who, SPEC, "chat", 100, 10)
    await accounting.settle(settled, usage(10, 5), "ok")  # its reservation is gone
    assert await accounting.sweep() == 3
    assert await accounting.sweep() == 0
    async with db.session() as s:
        spend = (await s.scalars(select(Spend).where(Spend.project_id == who.project_id))).one()
    assert spend.reserved_nano == 0
    assert spend.spent_nano == cost_nano(SPEC, 10, 0, 5)


async def test_shutdown_waits_for_an_in_line_settlement_whose_caller_was_cancelled(
    setup: tuple[Database, KeyService, Accounting],
) -> None:
    db, keys, accounting = setup
    ticket = await accounting.admit(await principal(keys), SPEC, "chat", 100, 10)
    caller = asyncio.create_task(accounting.settle(ticket, usage(10, 5), "ok"))
    await asyncio.sleep(0)  # its entry is queued for the writer
    caller.cancel()
    await accounting.settled()
    async with db.session() as s:
        rows = await s.scalar(select(func.count()).where(Usage.request_id == ticket.request_id))
    assert rows == 1


async def test_fine_tuned_models_are_their_organizations(
    setup: tuple[Database, KeyService, Accounting],
) -> None:
    from corral.core.errors import ModelNotFoundError

    _, keys, accounting = setup
    who = await principal(keys)
    mine = replace(SPEC, id="ft:m-2024-01-01:x:s:ftjob-1", owned_by=str(who.org_id))
    ticket = await accounting.admit(who, mine, "chat", 10, 10)
    await accounting.settle(ticket, usage(1, 1), "ok")
    theirs = replace(mine, owned_by="org-someone-else")
    with pytest.raises(ModelNotFoundError):
        await accounting.admit(who, theirs, "chat", 10, 10)
    admin = replace(who, is_admin=True)
    ticket = await accounting.admit(admin, theirs, "chat", 10, 10)
    await accounting.settle(ticket, usage(1, 1), "ok")
