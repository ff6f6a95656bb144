"""Readiness: every engine answers a real (one-token) request."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.core.errors import CorralError
from corral.services.registry import ModelRegistry

READY_TIMEOUT_S = 10.0


async def readiness(registry: ModelRegistry) -> tuple[bool, dict[str, Any]]:
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
    return ok, {"status": "ready" if ok else "unavailable", "models": models}
