from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.answer import answer
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import STREAMED, reads
from corral.protocol.completions import Completion, CompletionRequest

router = APIRouter()


@router.post("/v1/completions", response_model=Completion, responses=STREAMED)
@reads(CompletionRequest)
async def create_completion(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    prepared = await services.completions.prepare(parse_model(raw, CompletionRequest))
    return await answer(request, services, raw, prepared, services.completions.run)
