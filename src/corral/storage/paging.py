"""Keyset pagination in OpenAI's style (`limit`, `after` = an object id, `order`), shared
by every list endpoint whose rows have `created_at` and `id`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from corral.core.errors import InvalidRequestError

MAX_LIST = 100


def check_page(limit: int, order: str = "desc", most: int = MAX_LIST) -> None:
    if not 1 <= limit <= most:
        raise InvalidRequestError(f"limit must be between 1 and {most}.", param="limit")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be `asc` or `desc`.", param="order")


async def page(
    s: AsyncSession,
    query: Any,
    table: Any,
    limit: int,
    after: str | None,
    order: str,
    missing: str,
    most: int = MAX_LIST,
) -> list[Any]:
    """Up to ``limit + 1`` rows after the row ``after`` in (created_at, id) order (the
    extra row says whether there are more). ``missing`` is the error for an unknown
    ``after``. The id breaks ties, so rows created in the same instant are never skipped."""
    check_page(limit, order, most)
    desc = order == "desc"
    if after is not None:
        cursor = await s.get(table, after)
        if cursor is None:
            raise InvalidRequestError(missing, param="after")
        same = table.created_at == cursor.created_at
        query = query.where(
            (table.created_at < cursor.created_at) | (same & (table.id < after))
            if desc
            else (table.created_at > cursor.created_at) | (same & (table.id > after))
        )
    key = (table.created_at.desc(), table.id.desc()) if desc else (table.created_at, table.id)
    return list(await s.scalars(query.order_by(*key).limit(limit + 1)))
