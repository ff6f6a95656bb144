"""/v1/evals: definitions, runs (create, list, retrieve, cancel, delete), output items."""

from __future__ import annotations

from fastapi import APIRouter, Request

from corral.api.auth import principal_of
from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.api.routes.files import owner_of
from corral.protocol.evals import (
    EvalCreateRequest,
    EvalDeleted,
    EvalList,
    EvalObject,
    EvalRun,
    EvalRunList,
    EvalUpdateRequest,
    OutputItem,
    OutputItemList,
    RunCreateRequest,
    RunDeleted,
)

router = APIRouter()


@router.post("/v1/evals", response_model=EvalObject)
@reads(EvalCreateRequest)
async def create_eval(request: Request, services: ServicesDep) -> EvalObject:
    req = await read_model(request, EvalCreateRequest, services.settings.limits.max_body_bytes)
    return await services.evals.create(owner_of(request), req)


@router.get("/v1/evals", response_model=EvalList)
async def list_evals(
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "asc",
) -> EvalList:
    return await services.evals.list_evals(owner_of(request), limit, after, order)


@router.get("/v1/evals/{eval_id}", response_model=EvalObject)
async def retrieve_eval(eval_id: str, request: Request, services: ServicesDep) -> EvalObject:
    return await services.evals.retrieve(owner_of(request), eval_id)


@router.post("/v1/evals/{eval_id}", response_model=EvalObject)
@reads(EvalUpdateRequest)
async def update_eval(eval_id: str, request: Request, services: ServicesDep) -> EvalObject:
    req = await read_model(request, EvalUpdateRequest, services.settings.limits.max_body_bytes)
    return await services.evals.update(owner_of(request), eval_id, req)


@router.delete("/v1/evals/{eval_id}", response_model=EvalDeleted)
async def delete_eval(eval_id: str, request: Request, services: ServicesDep) -> EvalDeleted:
    return await services.evals.delete(owner_of(request), eval_id)


@router.post("/v1/evals/{eval_id}/runs", response_model=EvalRun)
@reads(RunCreateRequest)
async def create_run(eval_id: str, request: Request, services: ServicesDep) -> EvalRun:
    req = await read_model(request, RunCreateRequest, services.settings.limits.max_body_bytes)
    return await services.evals.create_run(owner_of(request), principal_of(request), eval_id, req)


@router.get("/v1/evals/{eval_id}/runs", response_model=EvalRunList)
async def list_runs(
    eval_id: str,
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "asc",
    status: str | None = None,
) -> EvalRunList:
    return await services.evals.list_runs(owner_of(request), eval_id, limit, after, order, status)


@router.get("/v1/evals/{eval_id}/runs/{run_id}", response_model=EvalRun)
async def retrieve_run(
    eval_id: str, run_id: str, request: Request, services: ServicesDep
) -> EvalRun:
    return await services.evals.retrieve_run(owner_of(request), eval_id, run_id)


@router.post("/v1/evals/{eval_id}/runs/{run_id}/cancel", response_model=EvalRun)
async def cancel_run(eval_id: str, run_id: str, request: Request, services: ServicesDep) -> EvalRun:
    return await services.evals.cancel_run(owner_of(request), eval_id, run_id)


@router.delete("/v1/evals/{eval_id}/runs/{run_id}", response_model=RunDeleted)
async def delete_run(
    eval_id: str, run_id: str, request: Request, services: ServicesDep
) -> RunDeleted:
    return await services.evals.delete_run(owner_of(request), eval_id, run_id)


@router.get("/v1/evals/{eval_id}/runs/{run_id}/output_items", response_model=OutputItemList)
async def list_output_items(
    eval_id: str,
    run_id: str,
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "asc",
    status: str | None = None,
) -> OutputItemList:
    return await services.evals.list_items(
        owner_of(request), eval_id, run_id, limit, after, order, status
    )


@router.get("/v1/evals/{eval_id}/runs/{run_id}/output_items/{item_id}", response_model=OutputItem)
async def retrieve_output_item(
    eval_id: str, run_id: str, item_id: str, request: Request, services: ServicesDep
) -> OutputItem:
    return await services.evals.retrieve_item(owner_of(request), eval_id, run_id, item_id)
