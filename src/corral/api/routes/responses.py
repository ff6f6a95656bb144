"""/v1/responses: create (JSON or typed events), retrieve, delete, input items."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from corral.accounts.metering import Metered
from corral.api.answer import answer
from corral.api.auth import principal_of
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import STREAMED, reads
from corral.api.sse import event_stream
from corral.inference.responses.service import PreparedResponse
from corral.protocol.responses import (
    DeletedResponse,
    InputItemList,
    InputTokenCount,
    ResponseObject,
    ResponseRequest,
)

router = APIRouter()


def scope_of(request: Request) -> str:
    """Stored responses belong to the caller's project ("-": open mode, admin keys)."""
    return principal_of(request).project_id or "-"


@router.post("/v1/responses", response_model=ResponseObject, responses=STREAMED)
@reads(ResponseRequest)
async def create_response(request: Request, services: ServicesDep) -> Response:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, ResponseRequest)
    prepared = await services.responses.prepare(req, scope_of(request), principal_of(request))

    async def present(p: PreparedResponse, metered: Metered[Any]) -> Response:
        if p.req.background:  # metered as the run's stream ends, whoever is listening
            response = await services.responses.start_background(p, metered.result)
            answer = Response(response.model_dump_json(), media_type="application/json")
        elif not p.stream:  # the core's whole answer, or a stream read whole (it searched)
            response = await services.responses.finish(p, metered.result)
            answer = Response(response.model_dump_json(), media_type="application/json")
        else:
            assert not isinstance(metered.result, BaseModel)
            presenter = services.responses.presenter(p)
            answer = await event_stream(metered.result, presenter, typed=True)
        if p.tools.left_out:  # hosted tools this server cannot run: said, not hidden
            answer.headers["x-corral-tools-ignored"] = ", ".join(p.tools.left_out)
        return answer

    return await answer(request, services, raw, prepared, services.responses.run, present)


@router.post("/v1/responses/input_tokens", response_model=InputTokenCount)
@reads(ResponseRequest)
async def count_input_tokens(request: Request, services: ServicesDep) -> Any:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    req = parse_model(raw, ResponseRequest)
    tokens = await services.responses.input_tokens(req, scope_of(request))
    return InputTokenCount(input_tokens=tokens)


@router.get("/v1/responses/{response_id}", response_model=ResponseObject)
async def get_response(response_id: str, request: Request, services: ServicesDep) -> Any:
    return await services.responses.get(scope_of(request), response_id)


@router.post("/v1/responses/{response_id}/cancel", response_model=ResponseObject)
async def cancel_response(response_id: str, request: Request, services: ServicesDep) -> Any:
    return await services.responses.cancel(scope_of(request), response_id)


@router.delete("/v1/responses/{response_id}", response_model=DeletedResponse)
async def delete_response(response_id: str, request: Request, services: ServicesDep) -> Any:
    await services.responses.delete(scope_of(request), response_id)
    return DeletedResponse(id=response_id)


@router.get("/v1/responses/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
    response_id: str,
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    items = await services.responses.input_items(scope_of(request), response_id)
    return list_page(items, limit, order, after)


def list_page(
    items: list[dict[str, Any]], limit: int, order: Literal["asc", "desc"], after: str | None
) -> InputItemList:
    """A page of items kept oldest first: ``order``, then those after the item ``after``."""
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return InputItemList(
        data=page,
        first_id=page[0].get("id") if page else None,
        last_id=page[-1].get("id") if page else None,
        has_more=len(items) > limit,
    )
