"""A pool of upstream replicas: least-outstanding routing, health checks, ejection.

Replica URLs come only from the operator's configuration (the catalog), never from a
request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from corral.core.errors import EngineUnavailableError

log = logging.getLogger(__name__)


@dataclass
class Replica:
    url: str  # base URL ending in /v1
    api_key: str | None = None
    outstanding: int = 0
    healthy: bool = True
    failures: int = 0
    ejected_until: float = 0.0
    served: int = 0
    missed_checks: int = 0  # consecutive health checks that timed out
    # When the replica last sent bytes of a good answer (time.monotonic()): a replica
    # streaming right now is alive, and is not probed (see Pool.check).
    answered_at: float = 0.0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def available(self, now: float) -> bool:
        return self.healthy and now >= self.ejected_until

    @property
    def public_url(self) -> str:
        """The URL without any credentials written into it, for metrics and listings."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class PoolSettings:
    eject_after: int = 2  # consecutive failures
    eject_for_s: float = 5.0
    health_interval_s: float = 1.0
    max_concurrent: int = 64  # per replica
    affinity: bool = False  # route by a hash of the system prompt when possible


@dataclass
class Pool:
    replicas: list[Replica]
    settings: PoolSettings = field(default_factory=PoolSettings)

    def pick(self, affinity_key: str | None = None, exclude: set[str] | None = None) -> Replica:
        """The least-loaded available replica (or the affine one, if it has room)."""
        now = time.monotonic()
        cap = self.settings.max_concurrent
        open_ = [r for r in self.replicas if r.available(now) and r.outstanding < cap]
        # A replica already tried is still better than none: the retry backoff gives a
        # busy one time, and a dead one is ejected by then.
        candidates = [r for r in open_ if r.url not in (exclude or set())] or open_
        if not candidates:
            raise EngineUnavailableError(
                "No upstream replica is available right now.",
                code="upstream_unavailable",
                headers={"retry-after": "1"},
            )
        if self.settings.affinity and affinity_key:
            digest = int(hashlib.sha256(affinity_key.encode()).hexdigest(), 16)
            preferred = self.replicas[digest % len(self.replicas)]
            if preferred in candidates:
                return preferred
        return min(candidates, key=lambda r: (r.outstanding, r.served))

    def failed(self, replica: Replica) -> None:
        replica.failures += 1
        if replica.failures >= self.settings.eject_after:
            replica.ejected_until = time.monotonic() + self.settings.eject_for_s
            log.warning("upstream %s ejected after %d failures", replica.url, replica.failures)

    def succeeded(self, replica: Replica) -> None:
        """A replica answered (its status arrived): its failures are forgotten."""
        replica.failures = 0
        replica.served += 1

    async def check(self, http: httpx.AsyncClient) -> None:
        """One round of active health checks: eject the dead, re-admit the recovered.

        A healthy replica that sent answer bytes within the last interval is not probed:
        under load the probes (a new connection each, to an engine that shares its cores
        with its decoding threads) cost the engine and the gateway CPU and told nothing
        its answers did not. One that stops answering is probed again one interval on."""
        now = time.monotonic()
        for replica in self.replicas:
            if replica.healthy and now - replica.answered_at < self.settings.health_interval_s:
                replica.missed_checks = 0  # an answer is as good as a probe answered
                continue
            ok = await self._probe(http, replica)
            if ok and not replica.healthy:
                log.info("upstream %s is back", replica.url)
            if ok:
                replica.failures = 0
                replica.ejected_until = 0.0
            replica.healthy = ok

    async def _probe(self, http: httpx.AsyncClient, replica: Replica) -> bool:
        """Refused or an error status: down at once. A timeout is only a busy replica
        until it repeats, so a loaded pool does not eject its last working member."""
        try:
            # Connection: close, because llama.cpp's HTTP server (cpp-httplib) polls each
            # idle kept-alive connection every 10 ms: a probe's connection left open would
            # wake the engine 100 times a second, for ever, beside its decoding threads.
            r = await http.get(
                replica.url + "/models",
                headers={**replica.headers, "connection": "close"},
                timeout=2.0,
            )
        except httpx.TimeoutException:
            replica.missed_checks += 1
            return replica.missed_checks < self.settings.eject_after
        except httpx.HTTPError:
            return False
        replica.missed_checks = 0
        return r.status_code == 200

    async def health_loop(self, http: httpx.AsyncClient) -> None:
        while True:
            try:
                await self.check(http)
            except Exception:  # the loop is what re-admits a replica: it must not die
                log.exception("upstream health check failed")
            await asyncio.sleep(self.settings.health_interval_s)
