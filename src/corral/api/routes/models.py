from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from corral.api.auth import principal_of
from corral.api.deps import ServicesDep
from corral.catalog.models import ModelsService
from corral.protocol.messages import AnthropicModelInfo, AnthropicModelList
from corral.protocol.models import DeprecationList, ModelCard, ModelList

router = APIRouter()


def viewer_org(request: Request) -> str | None:
    """Whose fine-tunes the caller sees: its organization's (admin, open mode: all)."""
    principal = principal_of(request)
    return None if principal.is_admin else principal.org_id


def anthropic_card(card: ModelCard) -> AnthropicModelInfo:
    created = datetime.fromtimestamp(card.created, UTC).isoformat().replace("+00:00", "Z")
    return AnthropicModelInfo(
        id=card.id,
        display_name=card.name or card.id,
        created_at=created,
        max_input_tokens=card.context_window,
    )


def anthropic_page(cards: list[ModelCard], limit: int, after_id: str | None) -> JSONResponse:
    """Anthropic's list shape (what the ``anthropic`` SDK's ``models.list()`` pages)."""
    ids = [c.id for c in cards]
    if after_id is not None:
        cards = cards[ids.index(after_id) + 1 :] if after_id in ids else []
    page = [anthropic_card(c) for c in cards[:limit]]
    body = AnthropicModelList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(cards) > limit,
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(
    request: Request,
    services: ServicesDep,
    everything: Annotated[
        bool, Query(alias="all", description="The whole catalog, not only what is callable now.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="Anthropic's shape only.")] = 20,
    after_id: Annotated[str | None, Query(description="Anthropic's shape only.")] = None,
) -> Any:
    """OpenAI's list; Anthropic's (paged by ``limit`` and ``after_id``) when the request
    carries an ``anthropic-version`` header, as the ``anthropic`` SDK's do."""
    models = ModelsService(services.registry).list(viewer_org(request), everything)
    if "anthropic-version" in request.headers:
        return anthropic_page(models.data, limit, after_id)
    return models


@router.get(
    "/v1/models/{model_id:path}", response_model=ModelCard, response_model_exclude_none=True
)
async def get_model(model_id: str, request: Request, services: ServicesDep) -> Any:
    card = ModelsService(services.registry).retrieve(model_id, viewer_org(request))
    if "anthropic-version" in request.headers:
        return JSONResponse(anthropic_card(card).model_dump(mode="json"))
    return card


@router.get("/v1/deprecations", response_model=DeprecationList)
async def list_deprecations(services: ServicesDep) -> DeprecationList:
    """Deprecated and scheduled-to-shut-down snapshots, soonest shutdown first."""
    return ModelsService(services.registry).deprecations()
