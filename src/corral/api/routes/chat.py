from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.api.sse import sse_response
from corral.protocol.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(request: Request, services: ServicesDep) -> Response:
    req = await read_model(request, ChatCompletionRequest, services.settings.limits.max_body_bytes)
    result = await services.chat.create(req)
    if isinstance(result, ChatCompletion):
        return Response(result.model_dump_json(), media_type="application/json")
    return await sse_response(result)
