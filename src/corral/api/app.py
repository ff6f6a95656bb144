"""``create_app(settings)``: the one place corral is composed. No module globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from corral import __version__
from corral.api.deps import Services
from corral.api.errors import install_error_handlers
from corral.api.lifecycle import LifecycleHeaders
from corral.api.routes import chat, completions, embeddings, health, metrics, models, pages
from corral.core.config import Settings
from corral.engines.llamacpp import LlamaCppEngine
from corral.services.admission import Admission
from corral.services.catalog import ModelSpec, load_catalog, local_snapshot
from corral.services.chat import ChatService
from corral.services.completions import CompletionService
from corral.services.embeddings import EmbeddingService
from corral.services.registry import ModelCollector, ModelRegistry
from corral.services.telemetry import Telemetry

log = logging.getLogger(__name__)


def default_registry(settings: Settings) -> ModelRegistry:
    """The catalog's models, loaded on demand; ``settings.model`` is loaded at start."""
    catalog = load_catalog(settings.catalog)
    preload = settings.model
    if catalog.resolve(preload) is None:  # not a catalog name: a GGUF path
        snap = local_snapshot(Path(preload))
        catalog, preload = catalog.with_snapshots([snap]), snap.id
    cache_dir = settings.data_dir / "cache"

    def engine_for(spec: ModelSpec) -> LlamaCppEngine:
        n_ctx = min(settings.engine.n_ctx, spec.context_window or settings.engine.n_ctx)
        engine_settings = settings.engine.model_copy(update={"n_ctx": n_ctx})
        return LlamaCppEngine(spec.path, engine_settings, cache_dir)

    return ModelRegistry(
        catalog,
        engine_for,
        engine_settings=settings.engine,
        store_dir=settings.data_dir / "models",
        memory_budget_mib=settings.loading.memory_budget_mib,
        load_timeout_s=settings.loading.load_timeout_s,
        preload=(preload,),
    )


def build_services(settings: Settings, registry: ModelRegistry) -> Services:
    telemetry = Telemetry()
    telemetry.registry.register(ModelCollector(registry))
    admission = Admission(settings.limits.max_in_flight, telemetry.rejected)
    return Services(
        settings=settings,
        registry=registry,
        admission=admission,
        telemetry=telemetry,
        chat=ChatService(registry, settings.limits, admission, telemetry),
        completions=CompletionService(registry, settings.limits, admission, telemetry),
        embeddings=EmbeddingService(registry, settings.limits, admission),
    )


def create_app(settings: Settings, registry: ModelRegistry | None = None) -> FastAPI:
    """Compose corral. Tests pass their own registry (a fake engine) to skip the model."""
    registry = registry or default_registry(settings)
    services = build_services(settings, registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await registry.start()
        log.info("corral %s serving %s", __version__, [s.spec.id for s in registry.all()])
        try:
            yield
        finally:
            await registry.close()

    app = FastAPI(title="corral", version=__version__, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    for module in (health, metrics, models, chat, completions, embeddings, pages):
        app.include_router(module.router)
    app.add_middleware(LifecycleHeaders)
    return app
