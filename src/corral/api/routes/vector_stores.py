"""/v1/vector_stores: stores, their files, file batches and search. Each route finds the
caller's store first (another project's is a 404), then acts on it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from corral.api.auth import principal_of
from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.protocol.vector_stores import (
    FileBatchCreate,
    FileBatchObject,
    FileContentPage,
    FileCreate,
    FileUpdate,
    SearchRequest,
    SearchResultsPage,
    VectorStoreCreate,
    VectorStoreDeleted,
    VectorStoreFileDeleted,
    VectorStoreFileList,
    VectorStoreFileObject,
    VectorStoreList,
    VectorStoreObject,
    VectorStoreUpdate,
)

router = APIRouter()
STORES = "/v1/vector_stores"
STORE = STORES + "/{vector_store_id}"
FILES = STORE + "/files"
FILE = FILES + "/{file_id}"
BATCHES = STORE + "/file_batches"
BATCH = BATCHES + "/{batch_id}"


async def _body(request: Request, services: ServicesDep) -> bytes:
    return await read_body(request, services.settings.limits.max_body_bytes)


@router.post(STORES, response_model=VectorStoreObject)
@reads(VectorStoreCreate)
async def create_store(request: Request, services: ServicesDep) -> VectorStoreObject:
    req = parse_model(await _body(request, services), VectorStoreCreate)
    return await services.vector_stores.create(principal_of(request), req)


@router.get(STORES, response_model=VectorStoreList)
async def list_stores(
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "desc",
) -> VectorStoreList:
    return await services.vector_stores.list(principal_of(request), limit, after, order)


@router.get(STORE, response_model=VectorStoreObject)
async def get_store(
    vector_store_id: str, request: Request, services: ServicesDep
) -> VectorStoreObject:
    return await services.vector_stores.retrieve(principal_of(request), vector_store_id)


@router.post(STORE, response_model=VectorStoreObject)
@reads(VectorStoreUpdate)
async def update_store(
    vector_store_id: str, request: Request, services: ServicesDep
) -> VectorStoreObject:
    req = parse_model(await _body(request, services), VectorStoreUpdate)
    return await services.vector_stores.update(principal_of(request), vector_store_id, req)


@router.delete(STORE, response_model=VectorStoreDeleted)
async def delete_store(
    vector_store_id: str, request: Request, services: ServicesDep
) -> VectorStoreDeleted:
    return await services.vector_stores.delete(principal_of(request), vector_store_id)


@router.post(STORE + "/search", response_model=SearchResultsPage)
@reads(SearchRequest)
async def search_store(
    vector_store_id: str, request: Request, services: ServicesDep
) -> SearchResultsPage:
    req = parse_model(await _body(request, services), SearchRequest)
    return await services.vector_stores.search(principal_of(request), vector_store_id, req)


@router.post(FILES, response_model=VectorStoreFileObject)
@reads(FileCreate)
async def attach_file(
    vector_store_id: str, request: Request, services: ServicesDep
) -> VectorStoreFileObject:
    who = principal_of(request)
    store = await services.vector_stores.row(who, vector_store_id)
    req = parse_model(await _body(request, services), FileCreate)
    return await services.vector_stores.files.attach(who, store, req)


@router.get(FILES, response_model=VectorStoreFileList)
async def list_files(
    vector_store_id: str,
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "desc",
    filter: str | None = None,
) -> VectorStoreFileList:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.files.list(store.id, limit, after, order, filter)


@router.get(FILE, response_model=VectorStoreFileObject)
async def get_file(
    vector_store_id: str, file_id: str, request: Request, services: ServicesDep
) -> VectorStoreFileObject:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.files.retrieve(store.id, file_id)


@router.post(FILE, response_model=VectorStoreFileObject)
@reads(FileUpdate)
async def update_file(
    vector_store_id: str, file_id: str, request: Request, services: ServicesDep
) -> VectorStoreFileObject:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    req = parse_model(await _body(request, services), FileUpdate)
    return await services.vector_stores.files.update(store.id, file_id, req)


@router.delete(FILE, response_model=VectorStoreFileDeleted)
async def remove_file(
    vector_store_id: str, file_id: str, request: Request, services: ServicesDep
) -> VectorStoreFileDeleted:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.files.remove(store.id, file_id)


@router.get(FILE + "/content", response_model=FileContentPage)
async def file_content(
    vector_store_id: str, file_id: str, request: Request, services: ServicesDep
) -> FileContentPage:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.files.content(store.id, file_id)


@router.post(BATCHES, response_model=FileBatchObject)
@reads(FileBatchCreate)
async def create_batch(
    vector_store_id: str, request: Request, services: ServicesDep
) -> FileBatchObject:
    who = principal_of(request)
    store = await services.vector_stores.row(who, vector_store_id)
    req = parse_model(await _body(request, services), FileBatchCreate)
    return await services.vector_stores.batches.create(who, store, req)


@router.get(BATCH, response_model=FileBatchObject)
async def get_batch(
    vector_store_id: str, batch_id: str, request: Request, services: ServicesDep
) -> FileBatchObject:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.batches.retrieve(store.id, batch_id)


@router.post(BATCH + "/cancel", response_model=FileBatchObject)
async def cancel_batch(
    vector_store_id: str, batch_id: str, request: Request, services: ServicesDep
) -> FileBatchObject:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    return await services.vector_stores.batches.cancel(store.id, batch_id)


@router.get(BATCH + "/files", response_model=VectorStoreFileList)
async def list_batch_files(
    vector_store_id: str,
    batch_id: str,
    request: Request,
    services: ServicesDep,
    limit: int = 20,
    after: str | None = None,
    order: str = "desc",
    filter: str | None = None,
) -> VectorStoreFileList:
    store = await services.vector_stores.row(principal_of(request), vector_store_id)
    batch = await services.vector_stores.batches.row(store.id, batch_id)
    return await services.vector_stores.files.list(store.id, limit, after, order, filter, batch.id)
