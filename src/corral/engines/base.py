"""The Engine interface.

Engines speak OpenAI-shaped request and response dicts (the format llama.cpp's server,
vLLM and every other OpenAI-compatible engine already use), so the service layer can
translate once and any engine can sit behind it. Engines raise ``corral.core.errors``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

Body = dict[str, Any]

# Set by corral on a request body for a fine-tuned model: the LoRA adapter (its path) to
# apply over the base. Engines that serve adapters map it to their own selection.
ADAPTER_KEY = "corral_adapter"


@dataclass(frozen=True)
class EngineInfo:
    """What the layers above need to know about a loaded model."""

    context_window: int
    fingerprint: str
    embeddings: bool
    slots: int
    max_embedding_tokens: int


def fingerprint(*parts: object) -> str:
    """The one way a served configuration is named (``system_fingerprint``): its parts,
    hashed. Who decides the parts: ``catalog.registry.engine_info``."""
    return "fp_" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12]


class Engine(Protocol):
    @property
    def info(self) -> EngineInfo: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def chat(self, body: Body) -> Body: ...

    def chat_stream(self, body: Body) -> AsyncIterator[Body]: ...

    async def complete(self, body: Body) -> Body: ...

    def complete_stream(self, body: Body) -> AsyncIterator[Body]: ...

    async def embed(self, body: Body) -> Body: ...

    async def count_chat_tokens(self, body: Body) -> int:
        """Exact prompt tokens of a chat request after the model's template."""
        ...

    async def count_tokens(self, text: str) -> int: ...

    async def template_tools(self) -> bool:
        """Whether the model's chat template renders tools and the engine parses the calls
        it writes (llama.cpp's ``chat_template_caps``): corral then sends tools in the
        model's own format (``inference.tools``, the ``native`` format)."""
        ...

    async def slots_busy(self) -> int:
        """Sequences the engine is decoding right now."""
        ...
