"""/v1/fine_tuning/jobs (create, list, retrieve, cancel, events, checkpoints) and
``DELETE /v1/models/{ft-model}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.api.routes.files import owner_of
from corral.protocol.fine_tuning import (
    FineTuningJob,
    JobCheckpointList,
    JobCreateRequest,
    JobEventList,
    JobList,
    ModelDeleted,
)

router = APIRouter()


@router.post("/v1/fine_tuning/jobs", response_model=FineTuningJob)
@reads(JobCreateRequest)
async def create_job(request: Request, services: ServicesDep) -> FineTuningJob:
    req = await read_model(request, JobCreateRequest, services.settings.limits.max_body_bytes)
    return await services.fine_tuning.create(owner_of(request), req)


@router.get("/v1/fine_tuning/jobs", response_model=JobList)
async def list_jobs(
    request: Request, services: ServicesDep, limit: int = 20, after: str | None = None
) -> JobList:
    return await services.fine_tuning.list(owner_of(request), limit, after)


@router.get("/v1/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
async def retrieve_job(job_id: str, request: Request, services: ServicesDep) -> FineTuningJob:
    return await services.fine_tuning.retrieve(owner_of(request), job_id)


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel", response_model=FineTuningJob)
async def cancel_job(job_id: str, request: Request, services: ServicesDep) -> FineTuningJob:
    return await services.fine_tuning.cancel(owner_of(request), job_id)


@router.get("/v1/fine_tuning/jobs/{job_id}/events", response_model=JobEventList)
async def job_events(
    job_id: str,
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
) -> JobEventList:
    return await services.fine_tuning.events(owner_of(request), job_id, limit, after)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints", response_model=JobCheckpointList)
async def job_checkpoints(
    job_id: str, request: Request, services: ServicesDep, limit: int = 10
) -> JobCheckpointList:
    return await services.fine_tuning.checkpoints(owner_of(request), job_id, limit)


@router.delete("/v1/models/{model_id:path}", response_model=ModelDeleted)
async def delete_model(model_id: str, request: Request, services: ServicesDep) -> ModelDeleted:
    """Only fine-tuned models can be deleted (by their organization's project)."""
    return await services.fine_tuning.delete_model(owner_of(request), model_id)
