"""The engine corral embeds, reached without corral: llama.cpp's own server loop.

Starts corral's LlamaCppEngine with the same settings corral uses and prints its
listener address and key as JSON, then serves until killed. The benchmark drives that
listener directly, which is exactly the engine with no gateway in front. The model is
resolved as ``corral serve`` resolves it: through the operator's catalog
(``CORRAL_CATALOG``) when one is set, with its window and RoPE scaling (the 32K catalog
for prompts past the embedded model's 8K).
"""

from __future__ import annotations

import asyncio
import json
import sys

from corral.catalog.registry import engine_info
from corral.catalog.schema import ModelSpec, load_catalog, resolve_model
from corral.core.config import Settings
from corral.engines.llamacpp import LlamaCppEngine


def model(settings: Settings) -> ModelSpec:
    """As the app's registry resolves it: a catalog name (the shipped catalog and the
    operator's), else a GGUF path."""
    catalog = load_catalog(settings.catalog)
    found = catalog.resolve(settings.model)
    if found is None:
        return resolve_model(settings.model)
    return catalog.spec(found.snapshot, settings.data_dir / "models")


async def main() -> None:
    settings = Settings()
    spec = model(settings)
    info = engine_info(spec, settings.engine)
    # As corral's app does: the engine's window is the model's (capped by engine.n_ctx).
    engine_settings = settings.engine.model_copy(update={"n_ctx": info.context_window})
    engine = LlamaCppEngine(spec.path, engine_settings, info, (), spec.rope)
    await engine.start()
    print(json.dumps({"url": engine.listening_address, "key": engine.listener_key}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await engine.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
