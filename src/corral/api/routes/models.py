from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from corral.api.auth import principal_of
from corral.api.deps import ServicesDep
from corral.catalog.models import ModelsService
from corral.protocol.models import DeprecationList, ModelCard, ModelList

router = APIRouter()


def viewer_org(request: Request) -> str | None:
    """Whose fine-tunes the caller sees: its organization's (admin, open mode: all)."""
    principal = principal_of(request)
    return None if principal.is_admin else principal.org_id


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(
    request: Request,
    services: ServicesDep,
    everything: Annotated[
        bool, Query(alias="all", description="The whole catalog, not only what is callable now.")
    ] = False,
) -> ModelList:
    return ModelsService(services.registry).list(viewer_org(request), everything)


@router.get(
    "/v1/models/{model_id:path}", response_model=ModelCard, response_model_exclude_none=True
)
async def get_model(model_id: str, request: Request, services: ServicesDep) -> ModelCard:
    return ModelsService(services.registry).retrieve(model_id, viewer_org(request))


@router.get("/v1/deprecations", response_model=DeprecationList)
async def list_deprecations(services: ServicesDep) -> DeprecationList:
    """Deprecated and scheduled-to-shut-down snapshots, soonest shutdown first."""
    return ModelsService(services.registry).deprecations()
