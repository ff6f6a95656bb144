"""The engine corral embeds, reached without corral: llama.cpp's own server loop.

Starts corral's LlamaCppEngine with the same settings corral uses and prints its
listener address and key as JSON, then serves until killed. The benchmark drives that
listener directly, which is exactly the engine with no gateway in front.
"""

from __future__ import annotations

import asyncio
import json
import sys

from corral.catalog.registry import engine_info
from corral.catalog.schema import resolve_model
from corral.core.config import Settings
from corral.engines.llamacpp import LlamaCppEngine


async def main() -> None:
    settings = Settings()
    spec = resolve_model(settings.model)
    engine = LlamaCppEngine(spec.path, settings.engine, engine_info(spec, settings.engine))
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
