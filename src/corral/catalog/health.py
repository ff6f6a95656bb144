"""Readiness: every loaded engine answered its probe lately.

The probe runs on a timer (``Readiness.run_forever``) and ``/ready`` answers from its
last result: a one-token completion per call added work to every load balancer's
check, and under load each one queued behind the work and took its whole 10 s timeout
to say 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from corral.catalog.registry import ModelRegistry, PooledEngine
from corral.core.errors import CorralError

log = logging.getLogger(__name__)


async def readiness(registry: ModelRegistry, probe_s: float = 10.0) -> tuple[bool, dict[str, Any]]:
    """Ready when every model in memory answers; models loading or unloaded are listed
    (``engines``) but do not make the server unready: requests for them wait for a load.

    The probe asks the engine to tokenize, not to decode: it goes through the engine's
    own request path (the child's listener) without taking a slot, so it never joins a
    batch (a probe decoding beside a seeded request changed that request's output) and
    costs nothing under load. A pool is ready while one of its replicas is."""
    models: dict[str, str] = {}
    now = time.monotonic()
    for id_, engine in [(s.spec.id, s.engine) for s in registry.all()]:
        try:
            await asyncio.wait_for(engine.count_tokens("ok"), probe_s)
        except TimeoutError:
            models[id_] = f"unavailable: no answer in {probe_s:g} s"
            continue
        except CorralError as exc:
            models[id_] = f"unavailable: {exc}"
            continue
        if isinstance(engine, PooledEngine) and not any(
            r.available(now) for r in engine.pool.replicas
        ):
            models[id_] = "unavailable: no healthy replica"
            continue
        models[id_] = "ready"
    ok = bool(models) and all(state == "ready" for state in models.values())
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
