"""Keys on SQLite and PostgreSQL: hashed at rest, hostile tokens refused fast."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from corral.core.errors import AuthenticationError
from corral.services.keys import KEY_RE, KeyService, hash_key
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
