"""``create_app(settings)``: the one place corral is composed. No module globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from corral import __version__
from corral.api.deps import Services
from corral.api.errors import install_error_handlers
from corral.api.routes import chat, completions, embeddings, health, metrics, models
from corral.core.config import Settings
from corral.engines.llamacpp import LlamaCppEngine
from corral.services.admission import Admission
from corral.services.catalog import resolve_model
from corral.services.chat import ChatService
from corral.services.completions import CompletionService
from corral.services.embeddings import EmbeddingService
from corral.services.registry import ModelRegistry
from corral.services.telemetry import Telemetry

log = logging.getLogger(__name__)


def default_registry(settings: Settings) -> ModelRegistry:
    spec = resolve_model(settings.model)
    registry = ModelRegistry()
    engine = LlamaCppEngine(spec.path, settings.engine, settings.data_dir / "cache")
    registry.add(spec, engine)
    return registry


def build_services(settings: Settings, registry: ModelRegistry) -> Services:
    telemetry = Telemetry()
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
    for module in (health, metrics, models, chat, completions, embeddings):
        app.include_router(module.router)
    return app
