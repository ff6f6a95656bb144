"""An engine that loads its model on demand: calls wait for the load, are counted while
in flight (an engine replaced by a reload is closed only once its own calls are done),
and the model can be unloaded when idle. Who loads, when and under which memory budget
is the catalog's registry (``corral.catalog.registry``); this is the engine side."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from corral.engines.base import Body, Engine, EngineInfo

S = TypeVar("S")
LoadState = Literal["unloaded", "loading", "loaded", "failed"]


@dataclass
class Loaded:
    engine: Engine
    memory_mib: float
    measured_mib: float
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)


class Loader(Protocol[S]):
    """Who loads and unloads a managed engine's model (the catalog's registry)."""

    idle: asyncio.Event  # set when an engine's last call ends

    async def ensure_loaded(self, managed: ManagedEngine[S]) -> None: ...

    async def unload(self, managed: ManagedEngine[S]) -> None: ...


class ManagedEngine(Generic[S]):
    """An Engine for one model that loads on first use and may be unloaded when idle.
    ``spec``: what its loader knows it by (the catalog's model spec)."""

    def __init__(self, registry: Loader[S], spec: S, info: EngineInfo) -> None:
        self._registry = registry
        self.spec = spec
        self._info = info
        self.users = 0
        self.loaded: Loaded | None = None
        self.state: LoadState = "unloaded"
        self.error: str | None = None
        self.loads = 0
        # Calls in flight per engine object: an engine replaced by a reload (its adapter
        # set changed) is closed only once its own calls are done.
        self.holds: dict[int, int] = {}

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        await self._registry.ensure_loaded(self)

    async def close(self) -> None:
        await self._registry.unload(self)

    async def _engine(self) -> Engine:
        if self.loaded is None:
            await self._registry.ensure_loaded(self)
        assert self.loaded is not None
        self.loaded.last_used = time.monotonic()
        return self.loaded.engine

    def _hold(self, engine: Engine, delta: int) -> None:
        key = id(engine)
        self.holds[key] = self.holds.get(key, 0) + delta
        if self.holds[key] <= 0:
            del self.holds[key]

    async def _call(self, name: str, *args: Any) -> Any:
        self.users += 1
        engine: Engine | None = None
        try:
            engine = await self._engine()
            self._hold(engine, 1)
            return await getattr(engine, name)(*args)
        finally:
            if engine is not None:
                self._hold(engine, -1)
            self._release()

    def _release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._registry.idle.set()

    async def _stream(self, name: str, body: Body) -> AsyncIterator[Body]:
        self.users += 1
        engine: Engine | None = None
        try:
            engine = await self._engine()
            self._hold(engine, 1)
            async for chunk in getattr(engine, name)(body):
                yield chunk
        finally:
            if engine is not None:
                self._hold(engine, -1)
            self._release()

    async def chat(self, body: Body) -> Body:
        result: Body = await self._call("chat", body)
        return result

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("chat_stream", body)

    async def complete(self, body: Body) -> Body:
        result: Body = await self._call("complete", body)
        return result

    def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("complete_stream", body)

    async def embed(self, body: Body) -> Body:
        result: Body = await self._call("embed", body)
        return result

    async def count_chat_tokens(self, body: Body) -> int:
        result: int = await self._call("count_chat_tokens", body)
        return result

    async def count_tokens(self, text: str) -> int:
        result: int = await self._call("count_tokens", text)
        return result

    async def template_tools(self) -> bool:
        result: bool = await self._call("template_tools")
        return result

    async def slots_busy(self) -> int:
        if self.loaded is None:
            return 0
        return await self.loaded.engine.slots_busy()
