from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.metering import metered
from corral.protocol.embeddings import EmbeddingList, EmbeddingRequest

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingList)
async def create_embeddings(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, EmbeddingRequest)
    return await metered(
        request,
        services,
        raw=raw,
        spec=services.registry.get(req.model).spec,
        stream=False,
        endpoint="embeddings",
        prompt_bound=len(raw) + 256,
        max_output=0,
        want_usage=False,
        run=lambda: services.embeddings.create(req),
    )
