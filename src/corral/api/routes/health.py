from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from corral.api.deps import ServicesDep
from corral.catalog.health import readiness

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """Alive: the process answers. Says nothing about the engine."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Ready: every engine answered a real one-token request just now."""
    ok, body = await readiness(services.registry)
    return JSONResponse(body, status_code=200 if ok else 503)
