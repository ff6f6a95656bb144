"""Admin endpoints: projects, API keys, usage and costs (admin keys only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from corral.accounts.keys import Principal
from corral.accounts.usage import Window
from corral.api.auth import principal_of
from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.core.errors import InvalidRequestError, PermissionDeniedError
from corral.protocol.organization import (
    ApiKeyDeleted,
    ApiKeyList,
    CostPage,
    CreatedApiKey,
    KeyCreate,
    ProjectCreate,
    ProjectList,
    ProjectObject,
    UsagePage,
    VectorStoresUsagePage,
)
from corral.storage.tables import NANO, ApiKey, Project

router = APIRouter(prefix="/v1/organization")


async def require_admin(request: Request) -> None:  # async: no thread-pool hop
    if not principal_of(request).is_admin:
        raise PermissionDeniedError("This endpoint needs an admin key.")


Admin = Annotated[None, Depends(require_admin)]


def project_access(request: Request, project_id: str) -> Principal:
    """Admins manage every project's keys; a project key manages its own project's (the
    console's keys page), never another's."""
    principal = principal_of(request)
    if not principal.is_admin and principal.project_id != project_id:
        raise PermissionDeniedError("This key can only manage its own project's keys.")
    return principal


def _project(p: Project) -> dict[str, Any]:
    return {
        "object": "organization.project",
        "id": p.id,
        "name": p.name,
        "created_at": int(p.created_at.timestamp()),
        "rpm": p.rpm,
        "tpm": p.tpm,
        "max_concurrent": p.max_concurrent,
        "budget_usd": None if p.budget_nano is None else p.budget_nano / NANO,
        "budget_period": p.budget_period,
        "status": "active",
    }


def _key(k: ApiKey) -> dict[str, Any]:
    return {
        "object": "organization.project.api_key",
        "id": k.id,
        "name": k.name,
        "redacted_value": k.prefix + "…",
        "created_at": int(k.created_at.timestamp()),
        "revoked": k.revoked_at is not None,
        "models": k.allowed_models,
        "project_id": k.project_id,
        "rpm": k.rpm,
        "tpm": k.tpm,
    }


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


@router.get("/projects", response_model=ProjectList)
async def list_projects(_: Admin, services: ServicesDep) -> dict[str, Any]:
    return _page([_project(p) for p in await services.keys.list_projects()])


@router.post("/projects", response_model=ProjectObject)
@reads(ProjectCreate)
async def create_project(_: Admin, request: Request, services: ServicesDep) -> dict[str, Any]:
    body = await read_model(request, ProjectCreate, services.settings.limits.max_body_bytes)
    return _project(await services.keys.create_project(**body.model_dump()))


@router.get("/projects/{project_id}/api_keys", response_model=ApiKeyList)
async def list_keys(project_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    project_access(request, project_id)
    return _page([_key(k) for k in await services.keys.list_keys(project_id)])


@router.post("/projects/{project_id}/api_keys", response_model=CreatedApiKey)
@reads(KeyCreate)
async def create_key(project_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    principal = project_access(request, project_id)
    body = await read_model(request, KeyCreate, services.settings.limits.max_body_bytes)
    expires = datetime.fromtimestamp(body.expires_at, UTC) if body.expires_at else None
    models = body.models
    if principal.allowed_models is not None:  # a restricted key makes no wider key
        models = models or list(principal.allowed_models)
        if not set(models) <= set(principal.allowed_models):
            raise InvalidRequestError(
                "A key can only be given models its creator's key may use.", param="models"
            )
    created = await services.keys.create_key(
        project_id,
        name=body.name,
        rpm=body.rpm,
        tpm=body.tpm,
        max_concurrent=body.max_concurrent,
        models=models,
        expires_at=expires,
    )
    return {
        "object": "organization.project.api_key",
        "id": created.id,
        "value": created.key,  # the only time the key is shown
        "redacted_value": created.prefix + "…",
    }


@router.delete("/projects/{project_id}/api_keys/{key_id}", response_model=ApiKeyDeleted)
async def revoke_key(
    project_id: str, key_id: str, request: Request, services: ServicesDep
) -> dict[str, Any]:
    project_access(request, project_id)
    await services.keys.revoke(key_id, project_id)
    return {"object": "organization.project.api_key.deleted", "id": key_id, "deleted": True}


@dataclass(frozen=True)
class ReportQuery:
    """The query parameters the usage and costs reports share."""

    window: Window
    group_by: list[str] | None
    project_ids: list[str] | None


async def report_query(  # async: no thread-pool hop
    start_time: Annotated[int, Query(description="Unix seconds: the first bucket's start.")],
    end_time: int | None = None,
    bucket_width: str = "1d",
    limit: int | None = Query(None, ge=1),
    group_by: Annotated[list[str] | None, Query()] = None,
    project_ids: Annotated[list[str] | None, Query()] = None,
) -> ReportQuery:
    window = Window.parse(start_time, end_time, bucket_width, limit)
    return ReportQuery(window, group_by, project_ids)


Report = Annotated[ReportQuery, Depends(report_query)]


@router.get("/usage/completions", response_model=UsagePage)
async def usage_completions(_: Admin, services: ServicesDep, q: Report) -> dict[str, Any]:
    return await services.usage.completions(q.window, q.group_by, q.project_ids)


@router.get("/usage/vector_stores", response_model=VectorStoresUsagePage)
async def usage_vector_stores(_: Admin, services: ServicesDep, q: Report) -> dict[str, Any]:
    """The bytes the stores hold per bucket (group_by: project_id)."""
    return await services.usage.vector_stores(q.window, q.group_by, q.project_ids)


@router.get("/costs", response_model=CostPage)
async def costs(_: Admin, services: ServicesDep, q: Report) -> dict[str, Any]:
    return await services.usage.costs(q.window, q.group_by, q.project_ids)
