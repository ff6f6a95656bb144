from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.protocol.embeddings import EmbeddingList, EmbeddingRequest

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingList)
async def create_embeddings(request: Request, services: ServicesDep) -> Response:
    req = await read_model(request, EmbeddingRequest, services.settings.limits.max_body_bytes)
    result = await services.embeddings.create(req)
    return Response(result.model_dump_json(), media_type="application/json")
