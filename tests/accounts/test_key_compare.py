"""Keys are never compared as strings: a key is looked up by its HMAC and the HMACs are
compared with ``hmac.compare_digest``, so an answer's timing says nothing about how much
of a guessed key was right."""

from __future__ import annotations

import ast
import hmac
import inspect
from pathlib import Path

import pytest

import corral.accounts.keys as keys_module
import corral.api.auth as auth_module
from corral.accounts.keys import KeyService, generate_key, hash_key
from corral.core.errors import AuthenticationError
from corral.storage.db import Database, upgrade

SECRET = b"test-secret"
ADMIN = "an-admin-key-of-any-shape-1234567890"
SECRETISH = {"token", "digest", "key", "authorization", "secret", "admin_key"}
SECRETISH_ATTRS = {"_admin_hash", "secret_hash", "_secret"}


async def test_keys_are_compared_as_hmacs_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    db = Database(url)
    compared: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    try:
        service = KeyService(db, SECRET, admin_key=ADMIN)
        assert (await service.authenticate(f"Bearer {ADMIN}")).is_admin
        assert compared == [(hash_key(SECRET, ADMIN), hash_key(SECRET, ADMIN))]

        made = await service.create_key((await service.create_project("p")).id)
        compared.clear()
        assert (await service.authenticate(f"Bearer {made.key}")).project_id is not None
        digest = hash_key(SECRET, made.key)
        assert (digest, digest) in compared

        guessed = made.key[:-4] + ("AAAA" if not made.key.endswith("AAAA") else "BBBB")
        compared.clear()
        with pytest.raises(AuthenticationError):
            await service.authenticate(f"Bearer {guessed}")
        with pytest.raises(AuthenticationError):
            await service.authenticate(f"Bearer {generate_key()}")
        seen = {value for pair in compared for value in pair}
        assert made.key not in seen and guessed not in seen  # only HMACs were compared
        assert all(len(v) == 64 for v in seen)
    finally:
        await db.close()


def test_no_secret_is_compared_with_eq() -> None:
    """No ``==``/``!=`` on a key, token or hash in the authentication code (a lookup by
    hash in SQL, against a bound parameter, is the one allowed form)."""
    offenders = []
    for module in (keys_module, auth_module):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            sides = [node.left, *node.comparators]
            if any(
                isinstance(s, ast.Call) and getattr(s.func, "id", "") == "bindparam" for s in sides
            ):
                continue
            for side in sides:
                if (isinstance(side, ast.Name) and side.id in SECRETISH) or (
                    isinstance(side, ast.Attribute) and side.attr in SECRETISH_ATTRS
                ):
                    offenders.append(f"{module.__name__}:{node.lineno}")
    assert not offenders
