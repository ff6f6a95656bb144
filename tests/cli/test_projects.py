"""`corral projects`: create, list and budget projects in the database the server uses (a
real SQLite file in a temporary data dir), as `corral keys` does; a budget set from the
command line holds the project's keys on their next request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from corral.accounts.keys import KeyService, load_secret
from corral.cli.app import app
from corral.core.config import Settings
from corral.storage.db import Database

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    # Only the data dir: a developer's shell must not point the commands elsewhere.
    unset = ["CORRAL_DATABASE_URL", "CORRAL_ADMIN_KEY", "CORRAL_SECRET_KEY"]
    return {"CORRAL_DATA_DIR": str(tmp_path), **dict.fromkeys(unset)}


def corral(env: dict[str, str | None], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def test_create_list_and_budget(env: dict[str, str | None]) -> None:
    made = corral(env, "projects", "create", "web", "--budget-usd", "5", "--rpm", "60")
    assert made.exit_code == 0, made.output
    project_id, rest = made.stdout.split("  ", 1)
    assert project_id.startswith("proj")
    assert rest.strip() == "web  budget=5.00 USD/month  rpm=60  tpm=-  concurrent=-"
    assert corral(env, "projects", "create", "batch-jobs").exit_code == 0

    listed = corral(env, "projects", "list").stdout.splitlines()
    assert [line.split()[1] for line in listed] == ["web", "batch-jobs"]
    assert "budget=none" in listed[1]

    by_name = corral(
        env, "projects", "budget", "web", "--budget-usd", "12.5", "--budget-period", "day"
    )
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout.startswith(f"{project_id}  web  budget=12.50 USD/day")
    by_id = corral(env, "projects", "budget", project_id, "--clear")
    assert by_id.exit_code == 0 and "budget=none" in by_id.stdout, by_id.output
    assert "budget=none" in corral(env, "projects", "list").stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["create", "web"], 1, "already exists"),
        (["budget", "nowhere", "--budget-usd", "1"], 1, "No project named `nowhere`"),
        (["budget", "web"], 2, "--budget-usd X, or --clear"),
        (["budget", "web", "--budget-usd", "1", "--clear"], 2, "--budget-usd X, or --clear"),
        (["budget", "web", "--budget-usd", "-1"], 2, "budget-usd"),
        (["budget", "web", "--budget-usd", "nan"], 2, "budget-usd"),
        (["create", "other", "--budget-period", "week"], 2, "budget-period"),
    ],
)
def test_refusals_are_said_not_raised(
    env: dict[str, str | None], args: list[str], code: int, message: str
) -> None:
    assert corral(env, "projects", "create", "web").exit_code == 0
    refused = corral(env, "projects", *args)
    assert refused.exit_code == code, refused.output
    assert message in refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)


async def test_a_budget_set_later_holds_the_next_request(
    env: dict[str, str | None], tmp_path: Path
) -> None:
    """The server keeps the keys it verified; a budget changed from the command line (another
    process) is seen on the key's next request all the same."""

    async def run(*args: str) -> str:  # the command runs its own event loop
        done = await asyncio.to_thread(corral, env, *args)
        assert done.exit_code == 0, done.output
        return done.stdout.strip()

    await run("projects", "create", "metered")
    key = await run("keys", "create", "--project", "metered")
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.db_url)
    try:
        keys = KeyService(db, load_secret(None, tmp_path), None)
        assert (await keys.authenticate(f"Bearer {key}")).budget_nano is None
        await run("projects", "budget", "metered", "--budget-usd", "0.5", "--budget-period", "day")
        held = await keys.authenticate(f"Bearer {key}")
        assert (held.budget_nano, held.budget_period) == (500_000_000, "day")
    finally:
        await db.close()
