from __future__ import annotations

from fastapi import APIRouter

from corral.api.deps import ServicesDep
from corral.protocol.models import ModelCard, ModelList
from corral.services.registry import ServedModel

router = APIRouter()


def _card(served: ServedModel) -> ModelCard:
    spec = served.spec
    return ModelCard(
        id=spec.id,
        created=spec.created,
        owned_by=spec.owned_by,
        context_window=served.engine.info.context_window,
        capabilities=list(spec.capabilities),
        description=spec.description,
    )


@router.get("/v1/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    return ModelList(data=[_card(s) for s in services.registry.all()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, services: ServicesDep) -> ModelCard:
    return _card(services.registry.get(model_id))
