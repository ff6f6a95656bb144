"""The embedder vector stores index and search with (``vector_stores.embedder.Embedder``):
the embeddings service, metered like an API request (admit, run, settle in line), with
usage rows under the vector stores' own endpoints."""

from __future__ import annotations

import dataclasses

import anyio

from corral.accounts.keys import Principal
from corral.accounts.metering import Meter
from corral.catalog.registry import ModelRegistry
from corral.inference.embeddings import EmbeddingService
from corral.protocol.embeddings import EmbeddingRequest
from corral.vector_stores.embedder import Embedded

# Inputs sent whole, however large the model's window: a piece this long is already far
# more than one of a chunk's 800 tokens needs, and llama.cpp embeds an input in one batch.
MAX_PIECE_BYTES = 8192


class MeteredEmbedder:
    def __init__(
        self, registry: ModelRegistry, embeddings: EmbeddingService, meter: Meter, model: str
    ) -> None:
        self._registry = registry
        self._embeddings = embeddings
        self._meter = meter
        self._model = model

    def piece_bytes(self) -> int:
        # The embeddings service bounds an input by its bytes + 2 (BOS/EOS) before it
        # asks the tokenizer: a piece within that is never counted, never refused.
        window = self._registry.get(self._model).engine.info.max_embedding_tokens
        return max(16, min(window - 2, MAX_PIECE_BYTES))

    async def embed(self, who: Principal, texts: list[str], endpoint: str) -> Embedded:
        prepared = await self._embeddings.prepare(EmbeddingRequest(model=self._model, input=texts))
        charge = dataclasses.replace(prepared.charge, endpoint=endpoint)
        ticket = await self._meter.admit(who, charge)
        try:
            result = await self._embeddings.run(prepared)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._meter.settle(ticket, None, "error")
            raise
        await self._meter.settle(ticket, result.usage.model_dump(), "ok")
        import numpy as np  # on first use, not at every start

        from corral.vector_stores.vectors import unit_rows

        rows = [d.embedding for d in sorted(result.data, key=lambda d: d.index)]
        vectors = unit_rows(np.array(rows, dtype=np.float32))
        return Embedded(vectors, result.usage.prompt_tokens)
