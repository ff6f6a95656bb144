"""/v1/batches: create, retrieve, list, cancel (the worker runs them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from corral.api.auth import principal_of
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.protocol.batches import BatchCreate, BatchList, BatchObject

router = APIRouter()


@router.post("/v1/batches", response_model=BatchObject)
@reads(BatchCreate)
async def create_batch(request: Request, services: ServicesDep) -> BatchObject:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    return await services.batches.create(principal_of(request), parse_model(raw, BatchCreate))


@router.get("/v1/batches/{batch_id}", response_model=BatchObject)
async def get_batch(batch_id: str, request: Request, services: ServicesDep) -> BatchObject:
    return await services.batches.get(principal_of(request), batch_id)


@router.get("/v1/batches", response_model=BatchList)
async def list_batches(
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> BatchList:
    return await services.batches.list(principal_of(request), limit, after)


@router.post("/v1/batches/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(batch_id: str, request: Request, services: ServicesDep) -> BatchObject:
    return await services.batches.cancel(principal_of(request), batch_id)
