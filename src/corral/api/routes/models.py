from __future__ import annotations

from fastapi import APIRouter

from corral.api.deps import ServicesDep
from corral.protocol.models import DeprecationList, ModelCard, ModelList
from corral.services.models import ModelsService

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(services: ServicesDep) -> ModelList:
    return ModelsService(services.registry).list()


@router.get(
    "/v1/models/{model_id:path}", response_model=ModelCard, response_model_exclude_none=True
)
async def get_model(model_id: str, services: ServicesDep) -> ModelCard:
    return ModelsService(services.registry).retrieve(model_id)


@router.get("/v1/deprecations", response_model=DeprecationList)
async def list_deprecations(services: ServicesDep) -> DeprecationList:
    """Deprecated and scheduled-to-shut-down snapshots, soonest shutdown first."""
    return ModelsService(services.registry).deprecations()
