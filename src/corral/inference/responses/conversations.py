"""The Conversations API's store: conversations and their items in order, each the
project's own. A response created with ``conversation`` reads the items as its history
and appends its input and output to them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from corral.core.errors import InvalidRequestError, NotFoundError
from corral.core.ids import new_id
from corral.inference.responses.input import with_parts
from corral.protocol.responses import ConversationObject
from corral.storage.db import Database
from corral.storage.tables import ConversationItemRow, ConversationRow

Item = dict[str, Any]
MAX_ADDED = 20  # items one create or add call may carry (OpenAI's limit)
ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # fits the column; no client markup


def fresh_id(item: Item) -> str:
    return new_id("msg" if item.get("type") == "message" else "item", "_")


def stored_item(item: Item) -> Item:
    """An item as a conversation keeps it: with an id, a message's content as parts. A
    client's id is kept only if it is a plain id that fits (the store makes it unique)."""
    item = {"type": "message", **item} if "role" in item and "type" not in item else dict(item)
    ident = item.get("id")
    item["id"] = ident if isinstance(ident, str) and ITEM_ID.fullmatch(ident) else fresh_id(item)
    return with_parts(item)


def _missing(kind: str, ident: str, param: str) -> NotFoundError:
    return NotFoundError(f"{kind} with id '{ident}' not found.", param=param)


def _object(row: ConversationRow) -> ConversationObject:
    created = int(row.created_at.timestamp())
    return ConversationObject(id=row.id, created_at=created, metadata=row.meta)


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, scope: str, metadata: dict[str, str], items: list[Item]) -> Any:
        bound_added(items)
        row = ConversationRow(
            id=new_id("conv", "_"), scope=scope, created_at=datetime.now(UTC), meta=metadata
        )
        async with self._db.begin() as s:
            s.add(row)
            await s.flush()
            await _unique(s, items)
            s.add_all(_rows(row.id, items))
        return _object(row)

    async def _row(self, s: Any, scope: str, conversation_id: str, param: str) -> ConversationRow:
        row = await s.get(ConversationRow, conversation_id)
        if row is None or row.scope != scope:
            raise _missing("Conversation", conversation_id, param)
        return row  # type: ignore[no-any-return]

    async def get(self, scope: str, conversation_id: str, param: str = "conversation_id") -> Any:
        async with self._db.session() as s:
            return _object(await self._row(s, scope, conversation_id, param))

    async def update(self, scope: str, conversation_id: str, metadata: dict[str, str]) -> Any:
        async with self._db.begin() as s:
            row = await self._row(s, scope, conversation_id, "conversation_id")
            row.meta = metadata
            return _object(row)

    async def delete(self, scope: str, conversation_id: str) -> None:
        async with self._db.begin() as s:
            row = await self._row(s, scope, conversation_id, "conversation_id")
            await s.execute(
                delete(ConversationItemRow).where(ConversationItemRow.conversation_id == row.id)
            )
            await s.delete(row)

    async def add(self, scope: str, conversation_id: str, items: list[Item], param: str) -> None:
        """``param``: how a missing conversation is named (the API's, or a response's)."""
        async with self._db.begin() as s:
            await self._row(s, scope, conversation_id, param)
            await _unique(s, items)
            s.add_all(_rows(conversation_id, items))

    async def items(self, scope: str, conversation_id: str, param: str) -> list[Item]:
        """Every item, oldest first (a response's history)."""
        async with self._db.session() as s:
            await self._row(s, scope, conversation_id, param)
            rows = await s.scalars(
                select(ConversationItemRow.item)
                .where(ConversationItemRow.conversation_id == conversation_id)
                .order_by(ConversationItemRow.seq)
            )
            return list(rows)

    async def item(self, scope: str, conversation_id: str, item_id: str) -> Item:
        for item in await self.items(scope, conversation_id, "conversation_id"):
            if item.get("id") == item_id:
                return item
        raise _missing("Item", item_id, "item_id")

    async def delete_item(self, scope: str, conversation_id: str, item_id: str) -> Any:
        async with self._db.begin() as s:
            row = await self._row(s, scope, conversation_id, "conversation_id")
            result = await s.execute(
                delete(ConversationItemRow).where(
                    ConversationItemRow.conversation_id == conversation_id,
                    ConversationItemRow.id == item_id,
                )
            )
            if not result.rowcount:
                raise _missing("Item", item_id, "item_id")
            return _object(row)


async def _unique(s: Any, items: list[Item]) -> None:
    """Item ids are unique across every conversation: an id a client chose that is taken
    (in this batch, or anywhere, whoever's) is replaced, never a failed insert (which
    would also tell the client that someone else's item has that id)."""
    wanted = [i["id"] for i in items]
    taken = set(
        await s.scalars(select(ConversationItemRow.id).where(ConversationItemRow.id.in_(wanted)))
    )
    for item in items:
        if item["id"] in taken:
            item["id"] = fresh_id(item)
        taken.add(item["id"])


def _rows(conversation_id: str, items: list[Item]) -> list[ConversationItemRow]:
    return [ConversationItemRow(id=i["id"], conversation_id=conversation_id, item=i) for i in items]


def bound_added(items: list[Item]) -> None:
    if len(items) > MAX_ADDED:
        raise InvalidRequestError(
            f"`items` has {len(items)} items; at most {MAX_ADDED} can be added at once.",
            param="items",
        )
