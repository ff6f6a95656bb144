"""Request-scoped access to the services composed by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from corral.accounts.accounting import Accounting
from corral.accounts.idempotency import Idempotency
from corral.accounts.keys import KeyService
from corral.accounts.metering import Meter
from corral.accounts.sessions import SessionStore
from corral.accounts.usage import UsageService
from corral.api.drain import Drain
from corral.batches.service import BatchService
from corral.batches.worker import BatchWorker
from corral.catalog.aliases import AliasPins
from corral.catalog.health import Readiness
from corral.catalog.registry import ModelRegistry
from corral.core.config import Settings
from corral.evals.service import EvalService
from corral.evals.worker import EvalWorker
from corral.files import FileService
from corral.inference.admission import Admission
from corral.inference.chat import ChatService
from corral.inference.completions import CompletionService
from corral.inference.embeddings import EmbeddingService
from corral.inference.messages.service import MessageService
from corral.inference.responses.conversations import ConversationStore
from corral.inference.responses.service import ResponseService
from corral.inference.telemetry import Telemetry
from corral.storage.db import Database
from corral.tuning.jobs import FineTuningService
from corral.vector_stores.ingest import IndexWorker
from corral.vector_stores.service import VectorStoreService


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: ModelRegistry
    admission: Admission
    telemetry: Telemetry
    chat: ChatService
    completions: CompletionService
    embeddings: EmbeddingService
    responses: ResponseService
    messages: MessageService
    batches: BatchService
    batch_worker: BatchWorker
    conversations: ConversationStore
    db: Database
    keys: KeyService
    accounting: Accounting
    meter: Meter
    usage: UsageService
    idempotency: Idempotency
    files: FileService
    fine_tuning: FineTuningService
    evals: EvalService
    eval_worker: EvalWorker
    aliases: AliasPins
    sessions: SessionStore
    readiness: Readiness
    drain: Drain
    vector_stores: VectorStoreService
    vector_store_worker: IndexWorker


# Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency on
# its thread pool, a thread hand-off per request (~0.5-1 ms before the first token here).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
