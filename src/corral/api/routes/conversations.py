"""/v1/conversations: conversations and their items (the Conversations API)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from corral.api.body import parse_model, read_body
from corral.api.deps import ServicesDep
from corral.api.openapi import reads
from corral.api.routes.responses import list_page, scope_of
from corral.inference.responses.conversations import bound_added, stored_item
from corral.inference.responses.input import as_items, to_messages
from corral.protocol.responses import (
    ConversationObject,
    ConversationRequest,
    ConversationUpdate,
    DeletedConversation,
    InputItemList,
    ItemsRequest,
)

router = APIRouter()
ONE = "/v1/conversations/{conversation_id}"


def _items(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items a client adds, each checked as a response will read it back as history (so
    a conversation never holds an item that breaks its next turn)."""
    items = [stored_item(i) for i in as_items(raw)]
    to_messages(items, None, field="items")
    return items


@router.post("/v1/conversations", response_model=ConversationObject)
@reads(ConversationRequest)
async def create_conversation(request: Request, services: ServicesDep) -> Any:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    body = parse_model(raw, ConversationRequest)
    items = _items(body.items or [])
    return await services.conversations.create(scope_of(request), body.metadata or {}, items)


@router.get(ONE, response_model=ConversationObject)
async def get_conversation(conversation_id: str, request: Request, services: ServicesDep) -> Any:
    return await services.conversations.get(scope_of(request), conversation_id)


@router.post(ONE, response_model=ConversationObject)
@reads(ConversationUpdate)
async def update_conversation(conversation_id: str, request: Request, services: ServicesDep) -> Any:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    body = parse_model(raw, ConversationUpdate)
    return await services.conversations.update(scope_of(request), conversation_id, body.metadata)


@router.delete(ONE, response_model=DeletedConversation)
async def delete_conversation(conversation_id: str, request: Request, services: ServicesDep) -> Any:
    await services.conversations.delete(scope_of(request), conversation_id)
    return DeletedConversation(id=conversation_id)


@router.post(ONE + "/items", response_model=InputItemList)
@reads(ItemsRequest)
async def add_items(conversation_id: str, request: Request, services: ServicesDep) -> Any:
    raw = await read_body(request, services.settings.limits.max_body_bytes)
    items = _items(parse_model(raw, ItemsRequest).items)
    bound_added(items)
    await services.conversations.add(scope_of(request), conversation_id, items, "conversation_id")
    return list_page(items, len(items), "asc", None)


@router.get(ONE + "/items", response_model=InputItemList)
async def list_items(
    conversation_id: str,
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    scope = scope_of(request)
    items = await services.conversations.items(scope, conversation_id, "conversation_id")
    return list_page(items, limit, order, after)


@router.get(ONE + "/items/{item_id}")
async def get_item(
    conversation_id: str, item_id: str, request: Request, services: ServicesDep
) -> Any:
    return await services.conversations.item(scope_of(request), conversation_id, item_id)


@router.delete(ONE + "/items/{item_id}", response_model=ConversationObject)
async def delete_item(
    conversation_id: str, item_id: str, request: Request, services: ServicesDep
) -> Any:
    return await services.conversations.delete_item(scope_of(request), conversation_id, item_id)
