"""Merging per-choice engine streams into one client stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

Chunk = dict[str, Any]
_DONE = object()


async def merge_indexed(streams: list[AsyncIterator[Chunk]]) -> AsyncIterator[tuple[int, Chunk]]:
    """Yield (choice index, chunk) from several streams as chunks arrive: each pumped by
    a task, cancelled (stopping its generation) if the consumer goes away. A caller
    with one stream iterates it itself, without this frame (one a token)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Chunk]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
        except Exception as exc:
            await queue.put(exc)
        finally:
            await queue.put(_DONE)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
