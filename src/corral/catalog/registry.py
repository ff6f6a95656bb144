"""The models being served: catalog names resolved to snapshots, loaded on demand.

Every catalog snapshot has a ``ManagedEngine`` (``engines.managed``): an Engine that
loads its model on first use (requests wait for a load, bounded by ``load_timeout_s``),
counts the calls in flight, and can be unloaded when idle. Loads take turns; before one,
the least recently used idle models are unloaded until the new one fits the memory
budget.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from corral.catalog.adapters import AdapterEngine, FineTunedModel
from corral.catalog.lifecycle import lifecycle_headers
from corral.catalog.schema import Catalog, ModelSpec, Resolution, Snapshot
from corral.catalog.upstreams import WATCH_S, UpstreamWatch
from corral.core.config import EngineSettings
from corral.core.errors import (
    CorralError,
    EngineUnavailableError,
    ModelNotAvailableError,
    ModelNotFoundError,
    ModelShutdownError,
)
from corral.engines.base import Engine, EngineInfo, fingerprint
from corral.engines.managed import Loaded, ManagedEngine
from corral.engines.params import NO_ROPE_SCALING
from corral.engines.pool import Pool
from corral.engines.process import LlamaCppProcessEngine
from corral.engines.supervisor import Supervisor

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelSpec], Engine]
Managed = ManagedEngine[ModelSpec]  # each snapshot's engine, known by its spec
MIB = 1024 * 1024


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of this process, or of ``pid`` (Linux /proc; 0 where it is missing)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError):
        return 0.0


def _child_mib(engine: Engine) -> float:
    """What the embedded engine's child holds: the model, loaded in its own process.
    (Launched upstreams are not counted: their models live on their GPUs.)"""
    if isinstance(engine, LlamaCppProcessEngine) and engine.pid is not None:
        return rss_mib(engine.pid)
    return 0.0


def _process_state(engine: Engine) -> dict[str, Any]:
    """The embedded engine's child, as /ready shows it: up or restarting, and how often."""
    if not isinstance(engine, LlamaCppProcessEngine):
        return {}
    return {"process": engine.supervisor.state, "restarts": engine.supervisor.restarts}


def physical_mib() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / MIB)


def estimate_mib(spec: ModelSpec, settings: EngineSettings) -> int:
    """The catalog's figure (the operator's, whole), else the file plus a margin for KV
    cache and buffers and the prompt cache the engine may fill (``engine.cache_ram_mib``)."""
    if spec.memory_mib is not None:
        return spec.memory_mib
    try:
        size = spec.path.stat().st_size / MIB
    except OSError:
        size = 0.0
    return int(size * 1.2 + settings.n_ctx / 16 + 64) + settings.cache_ram_mib


def local_window(spec: ModelSpec, settings: EngineSettings) -> int:
    """A local model's window: the catalog's, capped by the operator's ``n_ctx``."""
    return min(settings.n_ctx, spec.context_window or settings.n_ctx)


@runtime_checkable
class PooledEngine(Protocol):
    """An engine that routes to replicas over HTTP (upstreams, the embedded child)."""

    @property
    def pool(self) -> Pool: ...

    @property
    def supervisors(self) -> list[Supervisor]: ...


@dataclass(frozen=True)
class ServedModel:
    spec: ModelSpec
    engine: Engine
    # What an answer from it says of its lifecycle: the snapshot that served, the alias
    # the caller used, deprecation and sunset (see ``catalog.lifecycle``).
    headers: Mapping[str, str] = field(default_factory=dict)


UPSTREAM_WINDOW = 8192  # an upstream's context window where the catalog gives none


def _weights(path: Path) -> str:
    """The weights' identity without reading gigabytes to hash them."""
    try:
        st = path.stat()
    except OSError:
        return str(path)
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def engine_info(spec: ModelSpec, settings: EngineSettings) -> EngineInfo:
    """What the layers above know of a snapshot's engine. Decided here only: the registry
    gives it to the snapshot's ``ManagedEngine``, the engine factory to the engine."""
    up = spec.upstream
    if up is not None:
        window = spec.context_window or UPSTREAM_WINDOW
        replicas = up.replicas if up.launch is not None else len(up.pool_urls)
        return EngineInfo(
            context_window=window,
            fingerprint=fingerprint(
                "upstream", spec.id, up.model or spec.id, up.launch or up.pool_urls
            ),
            embeddings="embeddings" in spec.capabilities,
            slots=up.max_concurrent * replicas,
            max_embedding_tokens=window,
        )
    # RoPE scaling changes every answer, short ones included: it names the configuration.
    rope = () if spec.rope == NO_ROPE_SCALING else (spec.rope,)
    return EngineInfo(
        context_window=local_window(spec, settings),
        fingerprint=fingerprint(
            f"xllamacpp-{version('xllamacpp')}", spec.id, _weights(spec.path), *rope
        ),
        embeddings=settings.embeddings and "embeddings" in spec.capabilities,
        slots=settings.n_parallel,
        max_embedding_tokens=settings.n_ubatch,
    )


class ModelRegistry:
    def __init__(
        self,
        catalog: Catalog | None = None,
        factory: EngineFactory | None = None,
        *,
        engine_settings: EngineSettings | None = None,
        store_dir: Path = Path(),
        memory_budget_mib: int = 0,
        load_timeout_s: float = 120.0,
        preload: tuple[str, ...] = (),
        upstream_watch_s: float = WATCH_S,
    ) -> None:
        self.catalog = catalog or Catalog([])
        self._factory = factory
        self._settings = engine_settings or EngineSettings()
        self.store_dir = store_dir
        self.budget_mib = memory_budget_mib or int(physical_mib() * 0.8)
        self._load_timeout = load_timeout_s
        self._preload = preload
        self._static: dict[str, ServedModel] = {}
        self._managed: dict[str, Managed] = {}
        self._load_lock = asyncio.Lock()
        self._loading: dict[str, asyncio.Future[None]] = {}
        self.idle = asyncio.Event()
        self.unloads = 0
        self.load_seconds: list[tuple[str, float]] = []
        self._fine_tuned: dict[str, FineTunedModel] = {}
        self._retiring: set[asyncio.Future[None]] = set()
        self._watch_s = upstream_watch_s
        self._watch: UpstreamWatch | None = None  # set by start(): upstreams' health

    # -- names ---------------------------------------------------------------------------

    def add(self, spec: ModelSpec, engine: Engine) -> None:
        """A model that is always loaded (tests, and models outside the catalog)."""
        self._static[spec.id] = ServedModel(spec, engine)

    def today(self) -> date:
        return self.catalog.today()

    def resolve(self, name: str) -> Resolution:
        """The snapshot a name means today. Raises not-found or shut-down errors."""
        resolution = self.catalog.resolve(name)
        if resolution is None and self.catalog.is_alias(name):
            self._refuse_retired_alias(name)
        if resolution is None:
            raise ModelNotFoundError(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
            )
        snap = resolution.snapshot
        if snap.state(self.today()) == "shutdown":
            replacement = self.catalog.replacement_of(snap)
            raise ModelShutdownError(
                f"The model `{snap.id}` was shut down on {snap.stages.shutdown}. "
                f"Use `{replacement}` instead; see /v1/deprecations.",
                param="model",
            )
        return resolution

    def _refuse_retired_alias(self, name: str) -> None:
        """An alias whose snapshots have all shut down names the newest one's replacement."""
        members = self.catalog.families.get(name) or self.catalog.latest.get(name) or []
        today = self.today()
        retired = [s for s in members if s.state(today) == "shutdown"]
        if not retired or len(retired) != len([s for s in members if s.state(today)]):
            return
        last = max(retired, key=lambda s: (s.stages.shutdown or date.min, s.id))
        raise ModelShutdownError(
            f"The model `{name}` (last `{last.id}`) was shut down on {last.stages.shutdown}. "
            f"Use `{self.catalog.replacement_of(last)}` instead; see /v1/deprecations.",
            param="model",
        )

    def serves(self, name: str) -> bool:
        """Whether ``get(name)`` would find a model (without loading it)."""
        try:
            self.get(name)
        except CorralError:
            return False
        return True

    def get(self, name: str) -> ServedModel:
        """The model a name means, loaded or not; its engine loads on first use. Free of
        side effects: a caller that answers with it adds its ``headers``."""
        static = self._static.get(name)
        if static is not None:
            return static
        fine_tuned = self._fine_tuned.get(name)
        if fine_tuned is not None:
            return self._fine_tuned_model(fine_tuned)
        resolution = self.resolve(name)
        headers = lifecycle_headers(self.catalog, resolution, self.today())
        return replace(self.get_snapshot(resolution.snapshot), headers=headers)

    def get_snapshot(self, snap: Snapshot) -> ServedModel:
        return ServedModel(self._spec(snap), self._engine_for(snap))

    def is_loaded(self, snapshot_id: str) -> bool:
        managed = self._managed.get(snapshot_id)
        return managed is not None and managed.loaded is not None

    def static(self) -> list[ServedModel]:
        return list(self._static.values())

    def _spec(self, snap: Snapshot) -> ModelSpec:
        return self.catalog.spec(snap, self.store_dir)

    def _engine_for(self, snap: Snapshot) -> Managed:
        managed = self._managed.get(snap.id)
        if managed is None:
            spec = self._spec(snap)
            info = engine_info(spec, self._settings)
            managed = self._managed[snap.id] = ManagedEngine(self, spec, info)
        return managed

    def all(self) -> list[ServedModel]:
        """The models in memory now."""
        loaded = [ServedModel(m.spec, m) for m in self._managed.values() if m.loaded is not None]
        return [*self._static.values(), *loaded]

    def callable_now(self, snap: Snapshot) -> bool:
        """Could a request to it be served now: its weights are here and it fits the memory
        budget (what ``_load`` would refuse, no), or its upstream pool has a replica that
        answers (a request to a pool with none is answered 503)."""
        spec = self._spec(snap)
        if spec.source == "upstream":
            return self._upstream_up(snap.id)
        return spec.path.is_file() and estimate_mib(spec, self._settings) <= self.budget_mib

    def _upstream_up(self, snapshot_id: str) -> bool:
        """In memory: its own pool says (health checks and failed requests). Otherwise the
        watch's last check of its URLs; a launched upstream, or a registry not started
        (nothing checked), counts as up: a request starts or checks it."""
        managed = self._managed.get(snapshot_id)
        engine = managed.loaded.engine if managed is not None and managed.loaded else None
        if isinstance(engine, PooledEngine):
            now = time.monotonic()
            return any(r.available(now) for r in engine.pool.replicas)
        up = self._watch.up(snapshot_id) if self._watch is not None else None
        return up is not False

    def listed(self) -> list[Snapshot]:
        """Catalog snapshots a client may call today (not yet released or shut down: no)."""
        today = self.today()
        return [
            s for s in self.catalog.snapshots.values() if s.state(today) not in (None, "shutdown")
        ]

    # -- fine-tuned models (a base snapshot + a LoRA adapter) -----------------------------

    def fine_tuned(self) -> list[FineTunedModel]:
        return sorted(self._fine_tuned.values(), key=lambda m: (m.created, m.id))

    def get_fine_tuned(self, name: str) -> FineTunedModel | None:
        return self._fine_tuned.get(name)

    def adapters_for(self, snapshot_id: str) -> tuple[Path, ...]:
        """The adapters the base's engine loads (in a stable order: ids are positions)."""
        return tuple(sorted(m.adapter for m in self._fine_tuned.values() if m.base == snapshot_id))

    def _fine_tuned_model(self, ft: FineTunedModel) -> ServedModel:
        base = self._static.get(ft.base) or self.get_snapshot(self.resolve(ft.base).snapshot)
        spec = replace(
            base.spec,
            id=ft.id,
            owned_by=ft.owned_by,
            created=ft.created,
            description=f"Fine-tuned from {ft.base}.",
        )
        return ServedModel(spec, AdapterEngine(base.engine, ft.adapter))

    async def set_fine_tuned(self, models: list[FineTunedModel]) -> None:
        """Serve exactly these fine-tunes; loaded bases whose adapter set changed reload."""
        before = {m.base: self.adapters_for(m.base) for m in self._fine_tuned.values()}
        self._fine_tuned = {m.id: m for m in models if m.adapter.is_file()}
        changed = {
            base
            for base in {*before, *(m.base for m in self._fine_tuned.values())}
            if before.get(base, ()) != self.adapters_for(base)
        }
        for base in changed:
            managed = self._managed.get(base)
            if managed is not None and managed.loaded is not None:
                await self._reload(managed)

    async def _reload(self, managed: Managed) -> None:
        """Load the base again (with the new adapter set) and swap it in; the old engine
        closes once its calls in flight are done."""
        async with self._load_lock:
            if managed.loaded is None or self._factory is None:
                return
            engine = self._factory(managed.spec)
            await engine.start()
            old, managed.loaded.engine = managed.loaded.engine, engine
            log.info(
                "reloaded %s with %d adapters",
                managed.spec.id,
                len(self.adapters_for(managed.spec.id)),
            )
        retiring = asyncio.ensure_future(self._retire(managed, old))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _retire(self, managed: Managed, old: Engine) -> None:
        deadline = time.monotonic() + 600
        while managed.holds.get(id(old), 0) > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await old.close()

    # -- loading -------------------------------------------------------------------------

    def used_mib(self) -> float:
        return sum(m.loaded.memory_mib for m in self._managed.values() if m.loaded is not None)

    async def ensure_loaded(self, managed: Managed) -> None:
        if managed.loaded is not None:
            return
        pending = self._loading.get(managed.spec.id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(managed))
            self._loading[managed.spec.id] = pending
            pending.add_done_callback(lambda _: self._loading.pop(managed.spec.id, None))
        try:
            await asyncio.wait_for(asyncio.shield(pending), self._load_timeout)
        except TimeoutError:
            raise EngineUnavailableError(
                f"The model `{managed.spec.id}` is still loading; retry shortly.",
                code="model_loading",
                headers={"retry-after": "5"},
            ) from None

    async def _load(self, managed: Managed) -> None:
        spec = managed.spec
        if spec.source == "upstream":
            need = 0  # served elsewhere: costs this process no model memory
        elif not spec.path.is_file():
            raise ModelNotAvailableError(
                f"The model `{spec.id}` is not downloaded on this server "
                f"(an operator can run `corral pull {spec.id}`).",
                param="model",
            )
        else:
            need = estimate_mib(spec, self._settings)
        if need > self.budget_mib:
            raise ModelNotAvailableError(
                f"The model `{spec.id}` needs about {need} MiB; the memory budget is "
                f"{self.budget_mib} MiB.",
                param="model",
            )
        async with self._load_lock:
            if managed.loaded is not None:
                return
            await self._make_room(need, managed)
            assert self._factory is not None, "a registry with a catalog needs an engine factory"
            managed.state = "loading"
            before, started = rss_mib(), time.perf_counter()
            engine = self._factory(spec)
            try:
                await engine.start()
            except Exception as exc:
                managed.state, managed.error = "failed", str(exc)
                await engine.close()
                raise EngineUnavailableError(f"The model `{spec.id}` failed to load.") from exc
            seconds = time.perf_counter() - started
            measured = max(0.0, rss_mib() - before) + _child_mib(engine)
            managed.loaded = Loaded(engine, max(float(need), measured), measured, seconds)
            managed.state, managed.error = "loaded", None
            managed.loads += 1
            self.load_seconds.append((spec.id, seconds))
            log.info(
                "loaded %s in %.1fs (measured %.0f MiB, accounted %.0f of %d MiB)",
                spec.id,
                seconds,
                measured,
                managed.loaded.memory_mib,
                self.budget_mib,
            )

    async def _make_room(self, need: float, loading: Managed) -> None:
        deadline = time.monotonic() + self._load_timeout
        while self.used_mib() + need > self.budget_mib:
            idle = [
                m
                for m in self._managed.values()
                if m.loaded is not None and m.users == 0 and m is not loading
            ]
            if idle:
                victim = min(idle, key=lambda m: m.loaded.last_used if m.loaded else 0.0)
                await self.unload(victim)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineUnavailableError(
                    f"No memory for `{loading.spec.id}`: every loaded model is busy.",
                    code="model_capacity",
                    headers={"retry-after": "5"},
                )
            self.idle.clear()
            try:
                await asyncio.wait_for(self.idle.wait(), remaining)
            except TimeoutError:
                continue

    async def unload(self, managed: Managed) -> None:
        loaded, managed.loaded = managed.loaded, None
        if loaded is None:
            return
        managed.state = "unloaded"
        self.unloads += 1
        log.info("unloading %s (least recently used, idle)", managed.spec.id)
        await loaded.engine.close()

    # -- status --------------------------------------------------------------------------

    def models_state(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in self._managed.values():
            entry: dict[str, Any] = {"state": m.state, "users": m.users, "loads": m.loads}
            if m.loaded is not None:
                entry.update(_process_state(m.loaded.engine))
                entry["memory_mib"] = round(m.loaded.memory_mib)
                entry["measured_mib"] = round(m.loaded.measured_mib)
                entry["load_seconds"] = round(m.loaded.load_seconds, 2)
            if m.error:
                entry["error"] = m.error
            out[m.spec.id] = entry
        return out

    def pools(self) -> list[tuple[str, PooledEngine]]:
        """Each model in memory whose engine is a pool of replicas, by model id."""
        engines = [(m.spec.id, m.engine) for m in self._static.values()]
        engines += [(m.spec.id, m.loaded.engine) for m in self._managed.values() if m.loaded]
        return [(model, e) for model, e in engines if isinstance(e, PooledEngine)]

    def memory(self) -> dict[str, float]:
        return {"budget_mib": self.budget_mib, "used_mib": round(self.used_mib())}

    async def start(self) -> None:
        for served in self._static.values():
            await served.engine.start()
        for name in self._preload:
            await self.get(name).engine.start()
        today = self.today()
        specs = [
            self._spec(s) for s in self.catalog.snapshots.values() if s.state(today) != "shutdown"
        ]
        self._watch = UpstreamWatch(specs, self._watch_s)
        await self._watch.start()

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.close()
        for served in self._static.values():
            await served.engine.close()
        for managed in list(self._managed.values()):
            await self.unload(managed)


class ModelCollector:
    """Prometheus view of the registry, read at scrape time."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        reg = self._registry
        states = GaugeMetricFamily(
            "corral_model_state", "1 for the load state a model is in.", labels=["model", "state"]
        )
        memory = GaugeMetricFamily(
            "corral_model_memory_mib", "Memory accounted to a loaded model.", labels=["model"]
        )
        loads = CounterMetricFamily("corral_model_loads", "Model loads.", labels=["model"])
        for model_id, entry in reg.models_state().items():
            states.add_metric([model_id, entry["state"]], 1)
            loads.add_metric([model_id], entry["loads"])
            if "memory_mib" in entry:
                memory.add_metric([model_id], entry["memory_mib"])
        yield states
        yield memory
        yield loads
        yield CounterMetricFamily("corral_model_unloads", "Models unloaded.", value=reg.unloads)
        yield GaugeMetricFamily("corral_models_memory_budget_mib", "Budget.", value=reg.budget_mib)
        yield GaugeMetricFamily("corral_models_memory_used_mib", "In use.", value=reg.used_mib())
        yield GaugeMetricFamily(
            "corral_models_loaded",
            "Models in memory.",
            value=sum(1 for e in reg.models_state().values() if e["state"] == "loaded"),
        )


class PoolCollector:
    """Prometheus view of every upstream replica (and embedded child), at scrape time.
    Labels are the model and the replica's URL (credentials stripped); never a key."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "url"]
        healthy = GaugeMetricFamily(
            "corral_upstream_healthy",
            "1 if the replica passed its last health check.",
            labels=labels,
        )
        ejected = GaugeMetricFamily(
            "corral_upstream_ejected",
            "1 while the replica is ejected after failures.",
            labels=labels,
        )
        outstanding = GaugeMetricFamily(
            "corral_upstream_outstanding", "Requests in flight to the replica.", labels=labels
        )
        failures = GaugeMetricFamily(
            "corral_upstream_failures", "Consecutive failed requests to the replica.", labels=labels
        )
        served = CounterMetricFamily(
            "corral_upstream_served", "Requests the replica answered.", labels=labels
        )
        restarts = CounterMetricFamily(
            "corral_engine_restarts",
            "Restarts of engine processes corral supervises.",
            labels=["model", "name"],
        )
        now = time.monotonic()
        for model, engine in self._registry.pools():
            for r in engine.pool.replicas:
                key = [model, r.public_url]
                healthy.add_metric(key, int(r.healthy))
                ejected.add_metric(key, int(now < r.ejected_until))
                outstanding.add_metric(key, r.outstanding)
                failures.add_metric(key, r.failures)
                served.add_metric(key, r.served)
            for sup in engine.supervisors:
                restarts.add_metric([model, sup.name], sup.restarts)
        yield from (healthy, ejected, outstanding, failures, served, restarts)
