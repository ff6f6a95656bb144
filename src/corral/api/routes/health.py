from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from corral.api.deps import ServicesDep

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """Alive: the process answers. Says nothing about the engine."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Ready: every engine answered the last probe (one token, on a timer: this call
    costs the engine nothing), no engine child is restarting, and no shutdown began."""
    if services.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    readiness = services.readiness
    ok, body = readiness.last() if readiness.probed else await readiness.probe()
    engines = services.registry.models_state()  # live: a child down is unready at once
    ok = ok and all(e.get("process", "ready") == "ready" for e in engines.values())
    body = {
        **body,
        "status": "ready" if ok else "unavailable",
        "engines": engines,
        "memory": services.registry.memory(),
    }
    return JSONResponse(body, status_code=200 if ok else 503)
