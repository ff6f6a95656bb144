"""/v1/messages (JSON or Anthropic's event stream) and /v1/messages/count_tokens.

``?beta=true`` (Claude Code's) and the ``anthropic-version`` / ``anthropic-beta`` headers
are accepted; errors on these routes are in Anthropic's shape (``api.errors``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from corral.accounts.metering import Metered
from corral.api.answer import answer
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import STREAMED, reads
from corral.api.sse import event_stream
from corral.inference.messages.service import PreparedMessage
from corral.protocol.messages import CountTokensRequest, Message, MessagesRequest, TokenCount

router = APIRouter()


@router.post("/v1/messages", response_model=Message, responses=STREAMED)
@reads(MessagesRequest)
async def create_message(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, MessagesRequest)
    prepared = await services.messages.prepare(req)

    async def present(p: PreparedMessage, metered: Metered[Any]) -> Response:
        if p.stream:
            presenter = services.messages.presenter(p)
            reply: Response = await event_stream(metered.result, presenter, typed=True)
        else:
            message = await services.messages.collect(p, metered.result)
            reply = Response(message.model_dump_json(), media_type="application/json")
        if p.tools.left_out:  # Anthropic-defined tools this server cannot run: said
            reply.headers["x-corral-tools-ignored"] = ", ".join(p.tools.left_out)
        return reply

    return await answer(request, services, raw, prepared, services.messages.run, present)


@router.post("/v1/messages/count_tokens", response_model=TokenCount)
@reads(CountTokensRequest)
async def count_tokens(request: Request, services: ServicesDep) -> Any:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, CountTokensRequest)
    return TokenCount(input_tokens=await services.messages.count_tokens(req))
