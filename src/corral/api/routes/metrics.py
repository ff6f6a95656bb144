from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from corral.api.deps import ServicesDep

router = APIRouter()


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format: engine slots and admission state, read at scrape time."""
    lines = [
        "# HELP corral_requests_in_flight Requests admitted and not yet finished.",
        "# TYPE corral_requests_in_flight gauge",
        f"corral_requests_in_flight {services.admission.in_flight}",
        "# HELP corral_engine_slots_busy Sequences each engine is decoding.",
        "# TYPE corral_engine_slots_busy gauge",
    ]
    for served in services.registry.all():
        busy = await served.engine.slots_busy()
        lines.append(f'corral_engine_slots_busy{{model="{served.spec.id}"}} {busy}')
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
