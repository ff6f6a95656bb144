from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.answer import answer
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import STREAMED, reads
from corral.protocol.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAMED)
@reads(ChatCompletionRequest)
async def create_chat_completion(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    prepared = await services.chat.prepare(parse_model(raw, ChatCompletionRequest))
    return await answer(request, services, raw, prepared, services.chat.run)
