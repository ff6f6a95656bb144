from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.metering import metered
from corral.protocol.completions import Completion, CompletionRequest

router = APIRouter()


@router.post("/v1/completions", response_model=Completion)
async def create_completion(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, CompletionRequest)
    served = services.registry.get(req.model)
    window = served.engine.info.context_window
    prompts = len(req.prompt) if isinstance(req.prompt, list) and req.prompt else 1
    return await metered(
        request,
        services,
        raw=raw,
        spec=served.spec,
        stream=req.stream,
        endpoint="completions",
        prompt_bound=len(raw) + 256,
        max_output=(req.max_tokens or window) * req.n * prompts,
        want_usage=bool(req.stream_options and req.stream_options.include_usage),
        run=lambda: services.completions.create(req, served),
    )
