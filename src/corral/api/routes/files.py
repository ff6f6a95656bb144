"""/v1/files: upload (multipart, streamed to disk), list, retrieve, content, delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from corral.api.auth import principal_of
from corral.api.deps import ServicesDep
from corral.api.multipart import read_upload
from corral.api.openapi import UPLOAD, content_of
from corral.core.errors import InvalidRequestError, RequestTooLargeError
from corral.files import Owner
from corral.protocol.files import FileDeleted, FileList, FileObject
from corral.tuning.data import DataError, check_upload

router = APIRouter()


def owner_of(request: Request) -> Owner:
    principal = principal_of(request)
    return Owner(principal.org_id, principal.project_id)


@router.post("/v1/files", response_model=FileObject, openapi_extra=UPLOAD)
async def create_file(request: Request, services: ServicesDep) -> FileObject:
    files = services.files
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > files.max_bytes + 65536:
        raise RequestTooLargeError(
            f"The file is larger than the limit of {files.max_bytes} bytes.", param="file"
        )
    upload = files.begin_upload()
    try:
        form = await read_upload(request, upload.write, "file")
        if form.filename is None:
            raise InvalidRequestError("Missing the `file` field.", param="file")
        purpose = form.fields.get("purpose")
        if purpose is None:
            raise InvalidRequestError("Missing the `purpose` field.", param="purpose")
        if purpose == "fine-tune":
            await _check_training_file(upload.written())
        return await files.commit(upload, owner_of(request), form.filename, purpose)
    finally:
        upload.discard()  # a no-op once committed (the file was renamed)


@router.get("/v1/files", response_model=FileList)
async def list_files(
    request: Request,
    services: ServicesDep,
    purpose: str | None = None,
    limit: int = 10_000,
    after: str | None = None,
    order: str = "desc",
) -> FileList:
    return await services.files.list(owner_of(request), purpose, limit, after, order)


@router.get("/v1/files/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, request: Request, services: ServicesDep) -> FileObject:
    return await services.files.retrieve(owner_of(request), file_id)


@router.get(
    "/v1/files/{file_id}/content",
    response_class=Response,
    responses=content_of("application/octet-stream", {"type": "string", "format": "binary"}),
)
async def file_content(file_id: str, request: Request, services: ServicesDep) -> FileResponse:
    path = await services.files.content(owner_of(request), file_id)
    return FileResponse(path, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, request: Request, services: ServicesDep) -> FileDeleted:
    deleted = await services.files.delete(owner_of(request), file_id)  # 404 for others'
    await services.vector_stores.files.forget_file(deleted.id)
    return deleted


async def _check_training_file(path: Path) -> None:
    """Refused at upload, not by a job later: a line no reader can take in."""
    try:
        await asyncio.to_thread(check_upload, path)
    except DataError as exc:
        raise InvalidRequestError(
            f"The fine-tuning file is invalid: {exc}", param="file", code="invalid_file"
        ) from None
