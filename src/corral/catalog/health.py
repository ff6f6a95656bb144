"""Readiness: every loaded engine answers a real (one-token) request."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.catalog.registry import ModelRegistry
from corral.core.errors import CorralError

READY_TIMEOUT_S = 10.0


async def readiness(registry: ModelRegistry) -> tuple[bool, dict[str, Any]]:
    """Ready when every model in memory answers; models loading or unloaded are listed
    (``engines``) but do not make the server unready: requests for them wait for a load."""
    models: dict[str, str] = {}
    for served in registry.all():
        try:
            await asyncio.wait_for(
                served.engine.complete({"prompt": "ok", "max_tokens": 1}), READY_TIMEOUT_S
            )
            models[served.spec.id] = "ready"
        except (CorralError, TimeoutError) as exc:
            models[served.spec.id] = f"unavailable: {exc}"
    ok = bool(models) and all(state == "ready" for state in models.values())
    body: dict[str, Any] = {"status": "ready" if ok else "unavailable", "models": models}
    body["engines"] = registry.models_state()  # unloaded / loading / loaded / failed
    body["memory"] = registry.memory()
    return ok, body
