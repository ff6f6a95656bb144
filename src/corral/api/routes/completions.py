from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.api.sse import sse_response
from corral.protocol.completions import Completion, CompletionRequest

router = APIRouter()


@router.post("/v1/completions", response_model=Completion)
async def create_completion(request: Request, services: ServicesDep) -> Response:
    req = await read_model(request, CompletionRequest, services.settings.limits.max_body_bytes)
    result = await services.completions.create(req)
    if isinstance(result, Completion):
        return Response(result.model_dump_json(), media_type="application/json")
    return await sse_response(result)
