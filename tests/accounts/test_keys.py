"""Keys on SQLite and PostgreSQL: hashed at rest, hostile tokens refused fast."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from corral.accounts.keys import KEY_RE, KeyService, hash_key
from corral.core.errors import AuthenticationError, InvalidRequestError, NotFoundError
from corral.storage.db import Database, upgrade
from corral.storage.tables import Base

SECRET = b"test-secret"


@pytest.fixture
async def keys(db_url: str) -> AsyncIterator[KeyService]:
    upgrade(db_url)
    db = Database(db_url)
    yield KeyService(db, SECRET, admin_key=None)
    await db.close()


async def all_values(service: KeyService) -> str:
    db = service._db
    dump = []
    async with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(text(f"SELECT * FROM {table.name}"))).all()
            dump.extend(str(v) for row in rows for v in row)
    return "\n".join(dump)


async def test_key_is_stored_hashed_only(keys: KeyService) -> None:
    project = await keys.create_project("p1")
    created = await keys.create_key(project.id, name="ci")
    assert KEY_RE.fullmatch(created.key)
    dump = await all_values(keys)
    assert created.key not in dump
    assert created.key.removeprefix("sk-corral-") not in dump
    assert created.key[-20:] not in dump
    assert hash_key(SECRET, created.key) in dump
    who = await keys.authenticate(f"Bearer {created.key}")
    assert who.project_id == project.id and not who.is_admin


async def test_a_budget_is_set_cleared_and_bounded(keys: KeyService) -> None:
    """`corral projects budget`'s service: the key's next request carries the new budget."""
    project = await keys.create_project("p-b", budget_usd=5)
    created = await keys.create_key(project.id)
    assert (await keys.authenticate(f"Bearer {created.key}")).budget_nano == 5 * 10**9
    changed = await keys.set_budget(project.id, 0.25, "day")
    assert (changed.budget_nano, changed.budget_period) == (250_000_000, "day")
    who = await keys.authenticate(f"Bearer {created.key}")
    assert (who.budget_nano, who.budget_period) == (250_000_000, "day")
    cleared = await keys.set_budget(project.id, None)
    assert (cleared.budget_nano, cleared.budget_period) == (None, "day")
    assert (await keys.authenticate(f"Bearer {created.key}")).budget_nano is None
    for bad in (-1.0, float("nan"), float("inf"), 2e9):
        with pytest.raises(InvalidRequestError, match="budget_usd"):
            await keys.set_budget(project.id, bad)
        with pytest.raises(InvalidRequestError, match="budget_usd"):
            await keys.create_project(f"p-{bad}", budget_usd=bad)
    with pytest.raises(InvalidRequestError, match="budget_period"):
        await keys.set_budget(project.id, 1, "week")
    with pytest.raises(NotFoundError):
        await keys.set_budget("proj_none", 1)


async def test_revoked_and_expired_keys(keys: KeyService) -> None:
    project = await keys.create_project("p2")
    created = await keys.create_key(project.id)
    await keys.revoke(created.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        await keys.authenticate(f"Bearer {created.key}")
    old = await keys.create_key(project.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        await keys.authenticate(f"Bearer {old.key}")


HOSTILE = [
    None,
    "",
    "Bearer",
    "Basic abc",
    "Bearer ' OR '1'='1",
    "Bearer sk-corral-' OR 1=1; DROP TABLE api_keys; --",
    "Bearer sk-corral-" + "A" * 10_000,
    "Bearer sk-corral-\x00" + "A" * 42,
    "Bearer " + "sk-corral-" + "A" * 43,  # well-formed, unknown
    "Bearer sk-corral-%' UNION SELECT secret_hash FROM api_keys --",
]


@pytest.mark.parametrize("token", HOSTILE)
async def test_hostile_tokens_are_refused_fast(keys: KeyService, token: str | None) -> None:
    await keys.create_key((await keys.create_project("p3")).id)
    start = time.perf_counter()
    with pytest.raises(AuthenticationError) as err:
        await keys.authenticate(token)
    assert time.perf_counter() - start < 0.25
    assert err.value.status == 401
    assert len(await keys.list_keys()) == 1  # nothing was dropped


async def test_admin_key_from_settings(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    db = Database(db_url)
    service = KeyService(db, SECRET, admin_key="an-admin-key-of-any-shape-1234567890")
    assert await service.auth_enabled()
    who = await service.authenticate("Bearer an-admin-key-of-any-shape-1234567890")
    assert who.is_admin
    with pytest.raises(AuthenticationError):
        await service.authenticate("Bearer an-admin-key-of-any-shape-1234567891")
    await db.close()


async def test_auth_turns_on_with_the_first_key(keys: KeyService) -> None:
    assert not await keys.auth_enabled()
    await keys.create_key(None, admin=True)
    assert await keys.auth_enabled()


async def test_revocation_in_another_process_applies_at_once(db_url: str) -> None:
    """The API keeps verified keys while the database's change token stands still; a
    revocation by another process (the CLI, another API process) rewrites it."""
    upgrade(db_url)
    api_db, cli_db = Database(db_url), Database(db_url)
    api, cli = KeyService(api_db, SECRET, None), KeyService(cli_db, SECRET, None)
    try:
        created = await cli.create_key((await cli.create_project("p-rev")).id)
        header = f"Bearer {created.key}"
        for _ in range(3):
            assert (await api.authenticate(header)).key_id == created.id
        await cli.revoke(created.id)
        with pytest.raises(AuthenticationError, match="revoked"):
            await api.authenticate(header)
    finally:
        await api_db.close()
        await cli_db.close()


@pytest.fixture
async def sqlite_keys(tmp_path: Path) -> AsyncIterator[KeyService]:
    """Keys on a SQLite file (``c.db``): the per-process copies need its change token."""
    url = f"sqlite:///{tmp_path}/c.db"
    upgrade(url)
    db = Database(url)
    yield KeyService(db, SECRET, None)
    await db.close()


async def test_cached_keys_follow_the_change_token(sqlite_keys: KeyService, tmp_path: Path) -> None:
    keys, db = sqlite_keys, sqlite_keys._db
    created = await keys.create_key((await keys.create_project("p-c")).id)
    header = f"Bearer {created.key}"
    await keys.authenticate(header)
    async with db.engine.begin() as conn:  # behind corral's back: the token stays
        await conn.execute(text("DELETE FROM api_keys"))
    assert (await keys.authenticate(header)).key_id == created.id  # served cached
    epoch = db.epoch("auth")
    assert epoch is not None
    os.remove(f"{tmp_path}/c.db-auth.epoch")  # a lost token is a new one
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await keys.authenticate(header)
    assert epoch.read() is not None


async def test_a_cached_key_still_expires(sqlite_keys: KeyService) -> None:
    keys = sqlite_keys
    project = await keys.create_project("p-e")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    created = await keys.create_key(project.id, expires_at=soon)
    await keys.authenticate(f"Bearer {created.key}")
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    with pytest.raises(AuthenticationError, match="expired"):
        await keys.authenticate(f"Bearer {created.key}")
