from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.metering import metered
from corral.protocol.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, ChatCompletionRequest)
    served = services.registry.get(req.model)
    window = served.engine.info.context_window
    return await metered(
        request,
        services,
        raw=raw,
        spec=served.spec,
        stream=req.stream,
        endpoint="chat",
        # The body's bytes bound the prompt's tokens (a token is at least one byte).
        prompt_bound=len(raw) + 256,
        max_output=(req.output_limit or window) * req.n,
        want_usage=bool(req.stream_options and req.stream_options.include_usage),
        run=lambda: services.chat.create(req, served),
    )
