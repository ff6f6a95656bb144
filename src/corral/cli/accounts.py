"""`corral keys`, `corral db`, `corral usage`: accounts from the command line.

They work on the database directly (the same settings as `corral serve`), so the first
key can be made before any server runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer

from corral.accounts.keys import KeyService, load_secret
from corral.accounts.usage import Day, UsageService, Window, daily
from corral.core.config import Settings
from corral.storage.db import Database, upgrade

T = TypeVar("T")

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
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

    return asyncio.run(main())


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
