"""Request-scoped access to the services composed by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from corral.core.config import Settings
from corral.services.accounting import Accounting
from corral.services.admission import Admission
from corral.services.aliases import AliasPins
from corral.services.chat import ChatService
from corral.services.completions import CompletionService
from corral.services.embeddings import EmbeddingService
from corral.services.eval_worker import EvalWorker
from corral.services.evals import EvalService
from corral.services.files import FileService
from corral.services.fine_tuning import FineTuningService
from corral.services.idempotency import Idempotency
from corral.services.keys import KeyService
from corral.services.registry import ModelRegistry
from corral.services.telemetry import Telemetry
from corral.services.usage import UsageService
from corral.storage.db import Database


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: ModelRegistry
    admission: Admission
    telemetry: Telemetry
    chat: ChatService
    completions: CompletionService
    embeddings: EmbeddingService
    db: Database
    keys: KeyService
    accounting: Accounting
    usage: UsageService
    idempotency: Idempotency
    files: FileService
    fine_tuning: FineTuningService
    evals: EvalService
    eval_worker: EvalWorker
    aliases: AliasPins


# Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency on
# its thread pool, a thread hand-off per request (~0.5-1 ms before the first token here).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
