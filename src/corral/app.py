"""The composition root: `create_app(settings)` wires every domain into one ASGI app."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from corral import __version__
from corral.accounts.accounting import Accounting
from corral.accounts.idempotency import Idempotency
from corral.accounts.keys import KeyService, load_secret
from corral.accounts.limits import RateLimiter
from corral.accounts.metering import Meter
from corral.accounts.sessions import SessionStore
from corral.accounts.usage import UsageService
from corral.api.auth import AuthMiddleware
from corral.api.deps import Services
from corral.api.direct import DirectRoutes, table
from corral.api.drain import Drain, DrainMiddleware
from corral.api.errors import install_error_handlers
from corral.api.openapi import install as install_openapi
from corral.api.routes import (
    batches as batches_routes,
)
from corral.api.routes import (
    chat,
    completions,
    embeddings,
    evals,
    files,
    fine_tuning,
    health,
    metrics,
    models,
    organization,
    responses,
)
from corral.api.routes import (
    conversations as conversations_routes,
)
from corral.api.routes import (
    messages as messages_routes,
)
from corral.api.routes import (
    vector_stores as vector_stores_routes,
)
from corral.api.slow import SlowClients
from corral.batches.runner import LineRunner
from corral.batches.service import BatchService
from corral.batches.worker import BatchWorker
from corral.catalog.aliases import AliasPins
from corral.catalog.health import Readiness
from corral.catalog.registry import ModelCollector, ModelRegistry, PoolCollector, engine_info
from corral.catalog.schema import ModelSpec, load_catalog, local_snapshot
from corral.catalog.upstreams import upstream_engine
from corral.core.config import Settings
from corral.engines.base import Engine
from corral.engines.llamacpp import LlamaCppEngine
from corral.engines.process import LlamaCppProcessEngine
from corral.engines.saved_prompts import saved_prompts_dir
from corral.evals.service import EvalService
from corral.evals.worker import EvalWorker, ModelCalls, embedding_model, python_sandbox
from corral.files import FileService
from corral.inference.admission import Admission
from corral.inference.chat import ChatService
from corral.inference.completions import CompletionService
from corral.inference.embeddings import EmbeddingService
from corral.inference.messages.service import MessageService
from corral.inference.responses.conversations import ConversationStore
from corral.inference.responses.service import ResponseService
from corral.inference.responses.store import ResponseStore
from corral.inference.sealed import Sealer
from corral.inference.store_embedder import MeteredEmbedder
from corral.inference.telemetry import Telemetry
from corral.storage.db import Database, upgrade
from corral.tuning.jobs import FineTuningService
from corral.tuning.process import start_worker, stop_worker
from corral.vector_stores.batches import FileBatches
from corral.vector_stores.files import Attacher
from corral.vector_stores.ingest import IndexWorker
from corral.vector_stores.search import Searcher
from corral.vector_stores.service import VectorStoreService
from corral.web import console, pages
from corral.web import usage as usage_page

log = logging.getLogger(__name__)


def default_registry(settings: Settings) -> ModelRegistry:
    """The catalog's models, loaded on demand; ``settings.model`` is loaded at start."""
    catalog = load_catalog(settings.catalog)
    preload = settings.model
    if catalog.resolve(preload) is None:  # not a catalog name: a GGUF path
        snap = local_snapshot(Path(preload))
        catalog, preload = catalog.with_snapshots([snap]), snap.id
    registry: ModelRegistry | None = None

    def engine_for(spec: ModelSpec) -> Engine:
        info = engine_info(spec, settings.engine)
        log_dir = settings.data_dir / "engines"
        if spec.upstream is not None:
            return upstream_engine(spec, info, log_dir)
        engine_settings = settings.engine.model_copy(update={"n_ctx": info.context_window})
        # The base loads with its fine-tunes' LoRA adapters (a request selects one).
        adapters = registry.adapters_for(spec.id) if registry is not None else ()
        if engine_settings.isolation == "process":
            s = engine_settings
            saved = saved_prompts_dir(
                settings.data_dir / "prompts",
                info.fingerprint,
                s.n_ctx,
                s.n_parallel,
                adapters,
                s.flash_attn,
                s.kv_cache_type,
            )
            return LlamaCppProcessEngine(
                spec.path, engine_settings, info, log_dir, adapters, spec.rope, saved
            )
        return LlamaCppEngine(spec.path, engine_settings, info, adapters, spec.rope)

    registry = ModelRegistry(
        catalog,
        engine_for,
        engine_settings=settings.engine,
        store_dir=settings.data_dir / "models",
        memory_budget_mib=settings.loading.memory_budget_mib,
        load_timeout_s=settings.loading.load_timeout_s,
        preload=(preload,),
    )
    return registry


SWEEP_INTERVAL_S = 60.0
STOP_WAIT_S = 2.0


def build_services(settings: Settings, registry: ModelRegistry) -> Services:
    telemetry = Telemetry()
    telemetry.prompt_cache_limit.set(settings.engine.cache_ram_mib * 1024 * 1024)
    telemetry.registry.register(ModelCollector(registry))
    telemetry.registry.register(PoolCollector(registry))
    admission = Admission(
        settings.limits.max_in_flight, telemetry.rejected, settings.limits.queue_per_slot
    )
    db = Database(settings.db_url)
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    server_secret = load_secret(secret, settings.data_dir)
    conversations = ConversationStore(db)
    sealer = Sealer(server_secret)
    keys = KeyService(db, server_secret, admin_key)
    accounting = Accounting(db, RateLimiter(db), settings.accounts.reservation_ttl_s)
    meter = Meter(accounting, cost=telemetry.cost, rejected=telemetry.rejected)
    file_service = FileService(db, settings.files_dir, settings.files.max_bytes)
    chat = ChatService(registry, settings.limits, admission, telemetry)
    embeddings = EmbeddingService(registry, settings.limits, admission)
    calls = ModelCalls(registry, chat, embeddings, meter, embedding_model(settings))
    sandbox = python_sandbox(settings)
    eval_worker = EvalWorker(db, calls, settings.evals, sandbox)
    eval_service = EvalService(
        db, file_service, registry, settings.evals, sandbox, eval_worker.wake
    )
    completions = CompletionService(registry, settings.limits, admission, telemetry)
    vs = settings.vector_stores
    embedder = MeteredEmbedder(registry, embeddings, meter, vs.embedding_model or settings.model)
    searcher = Searcher(db, embedder, vs)
    index_worker = IndexWorker(db, file_service, embedder, vs)
    attacher = Attacher(db, file_service, vs, index_worker.wake, searcher.forget)
    vector_stores = VectorStoreService(db, attacher, FileBatches(db, attacher, vs), searcher, vs)
    responses = ResponseService(
        chat,
        ResponseStore(db),
        conversations,
        sealer,
        settings.responses,
        vector_stores,
        settings.mcp,
    )
    runner = LineRunner(chat, completions, embeddings, responses, meter)
    batch_worker = BatchWorker(
        db, file_service, runner, admission, settings.batches, settings.engine.n_parallel
    )
    return Services(
        db=db,
        keys=keys,
        accounting=accounting,
        meter=meter,
        usage=UsageService(db, accounting.settled),
        idempotency=Idempotency(db, settings.accounts.idempotency_ttl_s),
        settings=settings,
        registry=registry,
        admission=admission,
        telemetry=telemetry,
        chat=chat,
        completions=completions,
        embeddings=embeddings,
        responses=responses,
        messages=MessageService(chat, registry, sealer, settings.messages, settings.mcp),
        batches=BatchService(db, file_service, runner, settings.batches, batch_worker.wake),
        batch_worker=batch_worker,
        conversations=conversations,
        files=file_service,
        fine_tuning=FineTuningService(db, file_service, registry, settings.fine_tuning),
        evals=eval_service,
        eval_worker=eval_worker,
        aliases=AliasPins(db),
        sessions=SessionStore(db, settings.console.session_ttl_s, settings.console.idle_ttl_s),
        readiness=Readiness(
            registry, settings.ready_probe_interval_s, settings.ready_probe_timeout_s
        ),
        drain=Drain(),
        vector_stores=vector_stores,
        vector_store_worker=index_worker,
    )


def create_app(
    settings: Settings, registry: ModelRegistry | None = None, *, worker: bool = False
) -> FastAPI:
    """Compose corral. Tests pass their own registry (a fake engine) to skip the model.
    ``worker``: also run the training worker process (``corral serve`` does)."""
    registry = registry or default_registry(settings)
    services = build_services(settings, registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade, settings.db_url)
        await check_exposure(settings, services.keys)
        registry.catalog.pins = await services.aliases.load()
        pin_follower = asyncio.create_task(services.aliases.follow(registry.catalog))
        await registry.start()
        prober = asyncio.create_task(services.readiness.run_forever())
        sweeper = asyncio.create_task(sweep_forever(services.accounting))
        await services.fine_tuning.sync_models()
        await services.fine_tuning.resume_validation()
        syncer = asyncio.create_task(services.fine_tuning.sync_forever())
        evaluator = asyncio.create_task(services.eval_worker.run_forever())
        batcher = asyncio.create_task(services.batch_worker.run_forever())
        indexer = asyncio.create_task(services.vector_store_worker.run_forever())
        trainer = start_worker(settings) if worker else None
        log.info("corral %s serving %s", __version__, [s.spec.id for s in registry.all()])
        try:
            yield
        finally:
            if trainer is not None:
                await asyncio.to_thread(stop_worker, trainer)
            syncer.cancel()
            prober.cancel()
            # Jobs go back to the queue now, for the next start or another replica, rather
            # than after their heartbeat goes stale.
            await stopped(evaluator)
            await services.eval_worker.release()
            await stopped(batcher)
            await services.batch_worker.release()
            await stopped(indexer)
            await services.vector_store_worker.release()
            # Background responses running here end failed now, not when their heartbeat
            # goes stale: nothing will run them on.
            await services.responses.stop()
            pin_follower.cancel()
            await services.fine_tuning.close()
            sweeper.cancel()
            await registry.close()
            await services.accounting.settled()
            await services.db.close()

    app = FastAPI(title="corral", version=__version__, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    install_openapi(app)
    for module in (
        health,
        metrics,
        models,
        chat,
        completions,
        embeddings,
        evals,
        files,
        fine_tuning,
        organization,
        responses,
        conversations_routes,
        messages_routes,
        batches_routes,
        vector_stores_routes,
        pages,
        usage_page,
    ):
        app.include_router(module.router)
    for router in console.routers:
        app.include_router(router)
    # Added first, so it runs inside auth (the last added is outermost).
    routes = table(
        chat.router,
        completions.router,
        embeddings.router,
        responses.router,
        messages_routes.router,
    )
    app.add_middleware(DirectRoutes, routes=routes)
    app.add_middleware(AuthMiddleware, keys=services.keys, sessions=services.sessions)
    limits = settings.limits
    app.add_middleware(
        SlowClients, body_idle_s=limits.body_idle_timeout_s, send_s=limits.stream_send_timeout_s
    )
    app.add_middleware(DrainMiddleware, drain=services.drain)  # outermost: before auth
    return app


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel a worker's task and give it a moment to unwind (bounded: a worker stuck in
    a cancelled wait must not hold the shutdown; its job is released either way)."""
    task.cancel()
    await asyncio.wait({task}, timeout=STOP_WAIT_S)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_exposure(settings: Settings, keys: KeyService) -> None:
    """Open (no keys) is fine on loopback; anywhere else it needs an explicit yes."""
    if await keys.auth_enabled():
        log.info("authentication is on")
        return
    if not is_loopback(settings.host) and not settings.allow_open:
        raise RuntimeError(
            f"refusing to serve {settings.host} without authentication: create a key "
            "(`corral keys create`), set CORRAL_ADMIN_KEY, or set CORRAL_ALLOW_OPEN=true"
        )
    log.warning("no API keys configured: serving OPEN (no authentication) on %s", settings.host)


async def sweep_forever(accounting: Accounting) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            released = await accounting.sweep()
        except Exception:  # retried next interval; said, so a database gone is seen
            log.warning("sweeping stale reservations failed", exc_info=True)
            continue
        if released:
            log.info("released %d stale budget reservations", released)
