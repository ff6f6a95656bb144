from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.answer import answer
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.protocol.embeddings import EmbeddingList, EmbeddingRequest

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingList)
@reads(EmbeddingRequest)
async def create_embeddings(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    prepared = await services.embeddings.prepare(parse_model(raw, EmbeddingRequest))
    return await answer(request, services, raw, prepared, services.embeddings.run)
