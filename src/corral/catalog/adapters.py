"""Fine-tuned models: a base snapshot plus a LoRA adapter, served by the base's engine.

Adapters share the loaded base: the base's engine is loaded with every adapter of that
base at scale 0, and a request for a fine-tuned model selects its adapter
(``ADAPTER_KEY`` on the body), so a hundred fine-tunes are not a hundred copies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from corral.core.errors import InvalidRequestError
from corral.engines.base import ADAPTER_KEY, Body, Engine, EngineInfo, fingerprint


@dataclass(frozen=True)
class FineTunedModel:
    id: str  # ft:<base-snapshot>:<org>:<suffix>:<job-id>
    base: str  # the base snapshot id
    adapter: Path
    owned_by: str
    created: int
    project_id: str | None = None


class AdapterEngine:
    """The base's Engine with the fine-tune's adapter selected on every generation."""

    def __init__(self, base: Engine, adapter: Path) -> None:
        self._base = base
        self._adapter = str(adapter)
        self._fingerprint = fingerprint(base.info.fingerprint, adapter)

    @property
    def info(self) -> EngineInfo:
        return replace(self._base.info, fingerprint=self._fingerprint, embeddings=False)

    def _body(self, body: Body) -> Body:
        return {**body, ADAPTER_KEY: self._adapter}

    async def start(self) -> None:
        await self._base.start()

    async def close(self) -> None:
        return None  # the base's engine is the registry's to close

    async def chat(self, body: Body) -> Body:
        return await self._base.chat(self._body(body))

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._base.chat_stream(self._body(body))

    async def complete(self, body: Body) -> Body:
        return await self._base.complete(self._body(body))

    def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._base.complete_stream(self._body(body))

    async def embed(self, body: Body) -> Body:
        raise InvalidRequestError(
            "Fine-tuned models do not serve embeddings; use the base model.", param="model"
        )

    async def count_chat_tokens(self, body: Body) -> int:
        return await self._base.count_chat_tokens(body)

    async def count_tokens(self, text: str) -> int:
        return await self._base.count_tokens(text)

    async def slots_busy(self) -> int:
        return await self._base.slots_busy()

    async def template_tools(self) -> bool:
        return await self._base.template_tools()
