"""Organizations, projects and API keys; authentication of bearer tokens.

Keys are 256-bit secrets shown once. Only an HMAC-SHA-256 of a key (under a server
secret) is stored, so a leaked database yields no usable key; lookups go by that hash
(an index hit, no string built from user input), and the hashes are compared again in
constant time. The key's format is checked before any lookup.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select, update

from corral.core.clock import aware, now
from corral.core.errors import AuthenticationError, InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.protocol.organization import MAX_BUDGET_USD
from corral.storage.db import Database
from corral.storage.tables import ApiKey, Organization, Project

KEY_PREFIX = "sk-corral-"
KEY_RE = re.compile(r"^sk-corral-[A-Za-z0-9_-]{43}$")
MAX_TOKEN_LENGTH = 256
DEFAULT_ORG = "org-default"
AUTH_STATE_TTL_S = 2.0
# Verified keys are kept per process while the database's change token (storage.epoch)
# reads the same; the TTL only bounds a copy if a token could not be rewritten.
PRINCIPAL_CACHE_MAX = 10_000
PRINCIPAL_CACHE_TTL_S = 60

log = logging.getLogger(__name__)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: bytes, key: str) -> str:
    return hmac.digest(secret, key.encode(), "sha256").hex()  # one-shot C path, same value


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The HMAC secret: configured, or generated once into the data dir (mode 0600)."""
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Principal:
    """Who is calling, and the limits that apply to them."""

    key_id: str | None
    project_id: str | None
    org_id: str | None
    is_admin: bool
    allowed_models: tuple[str, ...] | None = None
    key_rpm: int | None = None
    key_tpm: int | None = None
    key_concurrent: int | None = None
    project_rpm: int | None = None
    project_tpm: int | None = None
    project_concurrent: int | None = None
    budget_nano: int | None = None
    budget_period: str = "month"


ANONYMOUS = Principal(None, None, None, is_admin=True)  # open local mode


def stored_principal(data: dict[str, Any]) -> Principal:
    """A principal kept as JSON (``dataclasses.asdict``) by a job that bills it later."""
    allowed = data.get("allowed_models")
    return Principal(**{**data, "allowed_models": tuple(allowed) if allowed else allowed})


def _invalid() -> AuthenticationError:
    return AuthenticationError(
        "Incorrect API key provided. You can create keys with `corral keys create`."
    )


@dataclass(frozen=True)
class _Cached:
    epoch: bytes
    at: float  # time.monotonic()
    principal: Principal
    expires: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    id: str
    key: str  # shown once
    prefix: str
    project_id: str | None


class KeyService:
    def __init__(self, db: Database, secret: bytes, admin_key: str | None) -> None:
        self._db = db
        self._secret = secret
        self._admin_hash = hash_key(secret, admin_key) if admin_key else None
        self._auth_state: tuple[float, bool] = (0.0, False)
        self._epoch = db.epoch("auth")
        self._principals: dict[str, _Cached] = {}

    async def auth_enabled(self) -> bool:
        """On when an admin key is configured or any key exists (checked every 2 s, so a
        key created by another process turns auth on there too)."""
        if self._admin_hash is not None:
            return True
        checked, enabled = self._auth_state
        if enabled or time.monotonic() - checked < AUTH_STATE_TTL_S:
            return enabled
        async with self._db.session() as s:
            count = await s.scalar(select(func.count()).select_from(ApiKey))
        enabled = bool(count)
        self._auth_state = (time.monotonic(), enabled)
        return enabled

    async def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        digest = hash_key(self._secret, token)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(None, None, DEFAULT_ORG, is_admin=True)
        if not KEY_RE.fullmatch(token):
            raise _invalid()
        return await self.authenticate_hash(digest)

    async def sign_in(self, key: str) -> tuple[str, Principal]:
        """A key checked for a console session: its HMAC (what the session keeps, never
        the key) and who it is."""
        principal = await self.authenticate("Bearer " + key.strip())
        return hash_key(self._secret, key.strip()), principal

    async def authenticate_hash(self, digest: str) -> Principal:
        """Who a key's HMAC belongs to, checked now (revoked or expired keys fail): a
        console session's key is checked again on each request this way."""
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(None, None, DEFAULT_ORG, is_admin=True)
        # The change token is read before the row: a change committed after this read
        # rewrites it, so the copy cached below cannot outlive that change.
        epoch = self._epoch.read() if self._epoch is not None else None
        cached = self._cached(digest, epoch)
        if cached is not None:
            return cached
        # Core columns, no ORM objects or session: this runs before the first token.
        row = await self._db.first(_AUTH_QUERY, {"digest": digest})
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            raise _invalid()
        if row.revoked_at is not None:
            raise AuthenticationError("This API key has been revoked.", code="invalid_api_key")
        expires = aware(row.expires_at) if row.expires_at is not None else None
        _check_expiry(expires)
        principal = _principal(row)
        if epoch is not None:
            if len(self._principals) >= PRINCIPAL_CACHE_MAX:
                self._principals.clear()
            self._principals[digest] = _Cached(epoch, time.monotonic(), principal, expires)
        return principal

    def _cached(self, digest: str, epoch: bytes | None) -> Principal | None:
        hit = self._principals.get(digest)
        if hit is None or epoch is None or hit.epoch != epoch:
            return None
        if time.monotonic() - hit.at > PRINCIPAL_CACHE_TTL_S:
            return None
        _check_expiry(hit.expires)
        return hit.principal

    def _changed(self) -> None:
        """After a commit that changed keys or projects: other processes drop copies."""
        if self._epoch is not None and not self._epoch.bump():
            log.error(
                "could not rewrite the API-key change token; other processes keep "
                "cached keys for up to %d s",
                PRINCIPAL_CACHE_TTL_S,
            )

    async def ensure_org(self) -> str:
        async with self._db.begin() as s:
            if await s.get(Organization, DEFAULT_ORG) is None:
                s.add(Organization(id=DEFAULT_ORG, name="Default organization", created_at=now()))
        return DEFAULT_ORG

    async def create_project(
        self,
        name: str,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrent: int | None = None,
        budget_usd: float | None = None,
        budget_period: str = "month",
    ) -> Project:
        org = await self.ensure_org()
        _check_period(budget_period)
        project = Project(
            id=new_id("proj"),
            org_id=org,
            name=name,
            created_at=now(),
            rpm=rpm,
            tpm=tpm,
            max_concurrent=max_concurrent,
            budget_nano=_budget_nano(budget_usd),
            budget_period=budget_period,
        )
        async with self._db.begin() as s:
            existing = await s.scalar(select(Project).where(Project.name == name))
            if existing is not None:
                raise InvalidRequestError(f"Project `{name}` already exists.", param="name")
            s.add(project)
        self._changed()
        return project

    async def set_budget(
        self, project_id: str, budget_usd: float | None, budget_period: str | None = None
    ) -> Project:
        """Set a project's budget (None clears it) and, if given, its period; the next
        request is held to it (the keys' cached copies carry the budget, so they are
        dropped)."""
        budget_nano = _budget_nano(budget_usd)
        if budget_period is not None:
            _check_period(budget_period)
        async with self._db.begin() as s:
            project: Project | None = await s.get(Project, project_id)
            if project is None:
                raise NotFoundError(f"No project `{project_id}`.", param="project_id")
            project.budget_nano = budget_nano
            if budget_period is not None:
                project.budget_period = budget_period
        self._changed()
        return project

    async def project_by_name(self, name: str) -> Project | None:
        async with self._db.session() as s:
            return await s.scalar(select(Project).where(Project.name == name))

    async def list_projects(self) -> list[Project]:
        async with self._db.session() as s:
            return list(await s.scalars(select(Project).order_by(Project.created_at)))

    async def create_key(
        self,
        project_id: str | None,
        *,
        name: str = "",
        admin: bool = False,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrent: int | None = None,
        models: list[str] | None = None,
        expires_at: datetime | None = None,
    ) -> CreatedKey:
        if project_id is None and not admin:
            raise InvalidRequestError("A key needs a project (or --admin).", param="project")
        secret = generate_key()
        row = ApiKey(
            id=new_id("key"),
            project_id=project_id,
            name=name,
            prefix=secret[: len(KEY_PREFIX) + 4],
            secret_hash=hash_key(self._secret, secret),
            is_admin=admin,
            allowed_models=models,
            rpm=rpm,
            tpm=tpm,
            max_concurrent=max_concurrent,
            created_at=now(),
            expires_at=expires_at,
        )
        async with self._db.begin() as s:
            if project_id is not None and await s.get(Project, project_id) is None:
                raise NotFoundError(f"No project `{project_id}`.", param="project_id")
            s.add(row)
        self._auth_state = (time.monotonic(), True)
        self._changed()
        return CreatedKey(row.id, secret, row.prefix, project_id)

    async def list_keys(self, project_id: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if project_id is not None:
            query = query.where(ApiKey.project_id == project_id)
        async with self._db.session() as s:
            return list(await s.scalars(query))

    async def revoke(self, key_id: str, project_id: str | None = None) -> None:
        """Revoke a key; with ``project_id``, only a key of that project (else not found)."""
        query = update(ApiKey).where(ApiKey.id == key_id)
        if project_id is not None:
            query = query.where(ApiKey.project_id == project_id)
        async with self._db.begin() as s:
            result = await s.execute(query.values(revoked_at=now()))
        if not result.rowcount:
            raise NotFoundError(f"No API key `{key_id}`.", param="key_id")
        self._changed()


def _check_period(budget_period: str) -> None:
    if budget_period not in ("month", "day"):
        raise InvalidRequestError("budget_period is month or day", param="budget_period")


def _budget_nano(budget_usd: float | None) -> int | None:
    """A budget in USD as stored (nano-USD in a bigint); bounded as the API's is."""
    if budget_usd is None:
        return None
    if not 0 <= budget_usd <= MAX_BUDGET_USD:  # also refuses NaN
        raise InvalidRequestError(
            f"budget_usd is between 0 and {MAX_BUDGET_USD:g} USD", param="budget_usd"
        )
    return round(budget_usd * 1e9)


def _check_expiry(expires: datetime | None) -> None:
    if expires is not None and expires <= now():
        raise AuthenticationError("This API key has expired.", code="invalid_api_key")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
            code="missing_api_key",
        )
    if len(authorization) > MAX_TOKEN_LENGTH + 7:
        raise _invalid()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _invalid()
    return token.strip()


# Table columns rather than ORM attributes: SQLAlchemy adapts ORM-annotated result
# columns on every execution (a dozen expression comparisons), half of this query's CPU.
# Built once, the digest a bind parameter, so no statement or cache key is made per call.
_KEYS, _PROJECTS = ApiKey.__table__.c, Project.__table__.c
_AUTH_QUERY = (
    select(
        _KEYS.id,
        _KEYS.project_id,
        _KEYS.secret_hash,
        _KEYS.is_admin,
        _KEYS.allowed_models,
        _KEYS.rpm,
        _KEYS.tpm,
        _KEYS.max_concurrent,
        _KEYS.expires_at,
        _KEYS.revoked_at,
        _PROJECTS.id.label("project_found"),
        _PROJECTS.org_id,
        _PROJECTS.rpm.label("project_rpm"),
        _PROJECTS.tpm.label("project_tpm"),
        _PROJECTS.max_concurrent.label("project_concurrent"),
        _PROJECTS.budget_nano,
        _PROJECTS.budget_period,
    )
    .select_from(ApiKey.__table__.outerjoin(Project.__table__, _KEYS.project_id == _PROJECTS.id))
    .where(_KEYS.secret_hash == bindparam("digest"))
)


def _principal(row: Any) -> Principal:
    found = row.project_found is not None
    return Principal(
        key_id=row.id,
        project_id=row.project_id,
        org_id=row.org_id if found else DEFAULT_ORG,
        is_admin=row.is_admin,
        allowed_models=tuple(row.allowed_models) if row.allowed_models else None,
        key_rpm=row.rpm,
        key_tpm=row.tpm,
        key_concurrent=row.max_concurrent,
        project_rpm=row.project_rpm,
        project_tpm=row.project_tpm,
        project_concurrent=row.project_concurrent,
        budget_nano=row.budget_nano,
        budget_period=row.budget_period if found else "month",
    )
