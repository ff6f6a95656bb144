"""`corral keys`, `corral projects`, `corral db`, `corral usage`: accounts from the
command line.

They work on the database directly (the same settings as `corral serve`), so the first
key can be made before any server runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from corral.accounts.keys import KeyService, load_secret
from corral.accounts.usage import Day, UsageService, Window, daily
from corral.core.config import Settings
from corral.core.errors import CorralError, NotFoundError
from corral.protocol.organization import INT32, MAX_BUDGET_USD
from corral.storage.db import Database, upgrade
from corral.storage.tables import NANO, Project

T = TypeVar("T")

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects: create, list, set a budget.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


def _run(work: Callable[[Database, KeyService], Awaitable[T]]) -> T:
    settings = Settings()
    upgrade(settings.db_url)

    async def main() -> T:
        db = Database(settings.db_url)
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        try:
            return await work(db, KeyService(db, load_secret(secret, settings.data_dir), admin))
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except CorralError as exc:  # a refusal of the service (a taken name, no such key)
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


@keys_app.command("create")
def create(
    project: Annotated[str | None, typer.Option(help="Project name (created if new).")] = None,
    admin: Annotated[bool, typer.Option(help="An admin key (manages orgs and keys).")] = False,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute for this key.")] = None,
    concurrent: Annotated[int | None, typer.Option(help="Concurrent requests.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated allowed models.")] = None,
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days.")] = None,
    budget_usd: Annotated[
        float | None, typer.Option(help="Monthly budget for a new project.")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create a key and print it: the only time it is shown."""
    if project is None and not admin:
        raise typer.BadParameter("give --project NAME, or --admin")

    async def work(_: Database, keys: KeyService) -> str:
        project_id = None
        if project is not None:
            found = await keys.project_by_name(project)
            found = found or await keys.create_project(project, budget_usd=budget_usd)
            project_id = found.id
        expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
        created = await keys.create_key(
            project_id,
            name=name,
            admin=admin,
            rpm=rpm,
            tpm=tpm,
            max_concurrent=concurrent,
            models=models.split(",") if models else None,
            expires_at=expires,
        )
        return created.key

    typer.echo(_run(work))


@keys_app.command("list")
def list_keys() -> None:
    """List keys (never their secrets)."""

    async def work(_: Database, keys: KeyService) -> list[Any]:
        return await keys.list_keys()

    for k in _run(work):
        state = "revoked" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {k.prefix}…  project={k.project_id}  admin={k.is_admin}  {state}")


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key; it stops working on the next request."""

    async def work(_: Database, keys: KeyService) -> None:
        await keys.revoke(key_id)

    _run(work)
    typer.echo(f"revoked {key_id}")


class Period(StrEnum):
    month = "month"
    day = "day"


Budget = Annotated[
    float | None,
    typer.Option(min=0, max=MAX_BUDGET_USD, help="Budget in USD per period (none: unlimited)."),
]


def _describe(p: Project) -> str:
    budget = (
        "none" if p.budget_nano is None else f"{p.budget_nano / NANO:.2f} USD/{p.budget_period}"
    )
    limits = (
        f"{label}={value or '-'}"
        for label, value in (("rpm", p.rpm), ("tpm", p.tpm), ("concurrent", p.max_concurrent))
    )
    return f"{p.id}  {p.name}  budget={budget}  " + "  ".join(limits)


async def _find_project(keys: KeyService, ref: str) -> Project:
    """A project by its name or its id."""
    found = await keys.project_by_name(ref)
    found = found or next((p for p in await keys.list_projects() if p.id == ref), None)
    if found is None:
        raise NotFoundError(f"No project named `{ref}` or with that id.", param="project")
    return found


@projects_app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="The project's name (unique).")],
    budget_usd: Budget = None,
    budget_period: Annotated[Period, typer.Option(help="What the budget covers.")] = Period.month,
    rpm: Annotated[int | None, typer.Option(min=1, max=INT32, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, max=INT32, help="Tokens per minute.")] = None,
    concurrent: Annotated[
        int | None, typer.Option(min=1, max=INT32, help="Concurrent requests.")
    ] = None,
) -> None:
    """Create a project (its keys share its limits and budget) and print it."""

    async def work(_: Database, keys: KeyService) -> Project:
        return await keys.create_project(
            name,
            rpm=rpm,
            tpm=tpm,
            max_concurrent=concurrent,
            budget_usd=budget_usd,
            budget_period=budget_period.value,
        )

    typer.echo(_describe(_run(work)))


@projects_app.command("list")
def list_projects() -> None:
    """List projects with their budgets and limits."""

    async def work(_: Database, keys: KeyService) -> list[Project]:
        return await keys.list_projects()

    for p in _run(work):
        typer.echo(_describe(p))


@projects_app.command("budget")
def budget(
    project: Annotated[str, typer.Argument(help="The project's name or id.")],
    budget_usd: Budget = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the budget.")] = False,
    budget_period: Annotated[
        Period | None, typer.Option(help="What the budget covers (default: unchanged).")
    ] = None,
) -> None:
    """Set or clear an existing project's budget; the next request is held to it."""
    if (budget_usd is None) == (not clear):
        raise typer.BadParameter("give --budget-usd X, or --clear")

    async def work(_: Database, keys: KeyService) -> Project:
        found = await _find_project(keys, project)
        period = budget_period.value if budget_period is not None else None
        return await keys.set_budget(found.id, budget_usd, period)

    typer.echo(_describe(_run(work)))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations (`corral serve` also does this at start)."""
    settings = Settings()
    upgrade(settings.db_url)
    typer.echo("database is at the latest revision")


def usage(
    days: Annotated[int, typer.Option(help="How many days back.")] = 7,
) -> None:
    """Tokens and cost per day and model."""
    window = Window.parse(int(time.time()) - days * 86400, None, "1d", days + 1)

    async def work(db: Database, _: KeyService) -> list[Day]:
        return await daily(UsageService(db), window)

    typer.echo(
        f"{'day':<10}  {'model':<32} {'requests':>8} {'input':>10} {'output':>10} {'USD':>12}"
    )
    for day in _run(work):
        for r in day.rows:
            typer.echo(
                f"{day.day:<10}  {r.model:<32} {r.requests:>8} "
                f"{r.input:>10} {r.output:>10} {r.cost:>12.6f}"
            )
