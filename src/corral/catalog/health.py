"""Readiness: every loaded engine answered a real (one-token) request lately.

The probe runs on a timer (``Readiness.run_forever``) and ``/ready`` answers from its
last result: a probe per call added a completion to every load balancer's check, and
under load each one queued behind the work and took its whole timeout to say 503. An
engine whose probe timed out while its slots were busy is working, not dead: ready.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from corral.catalog.registry import ModelRegistry
from corral.core.errors import CorralError

log = logging.getLogger(__name__)


async def readiness(registry: ModelRegistry, probe_s: float = 10.0) -> tuple[bool, dict[str, Any]]:
    """Ready when every model in memory answers; models loading or unloaded are listed
    (``engines``) but do not make the server unready: requests for them wait for a load."""
    models: dict[str, str] = {}
    for served in registry.all():
        try:
            await asyncio.wait_for(
                served.engine.complete({"prompt": "ok", "max_tokens": 1}), probe_s
            )
            models[served.spec.id] = "ready"
        except TimeoutError as exc:
            busy = await served.engine.slots_busy()
            models[served.spec.id] = "ready (busy)" if busy else f"unavailable: {exc!r}"
        except CorralError as exc:
            models[served.spec.id] = f"unavailable: {exc}"
    ok = bool(models) and all(state.startswith("ready") for state in models.values())
    body: dict[str, Any] = {"status": "ready" if ok else "unavailable", "models": models}
    body["engines"] = registry.models_state()  # unloaded / loading / loaded / failed
    body["memory"] = registry.memory()
    return ok, body


class Readiness:
    """The last probe's verdict, refreshed every ``interval`` seconds."""

    def __init__(self, registry: ModelRegistry, interval: float, timeout: float) -> None:
        self._registry = registry
        self._interval = interval
        self._timeout = timeout
        self._last: tuple[bool, dict[str, Any]] = (False, {"status": "starting"})
        self.probed = False

    def last(self) -> tuple[bool, dict[str, Any]]:
        return self._last

    async def probe(self) -> tuple[bool, dict[str, Any]]:
        self._last = await readiness(self._registry, self._timeout)
        self.probed = True
        return self._last

    async def run_forever(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # a probe that fails says unready; it must not stop probing
                log.exception("readiness probe failed")
                self._last = (False, {"status": "unavailable", "models": {}})
            await asyncio.sleep(self._interval)
