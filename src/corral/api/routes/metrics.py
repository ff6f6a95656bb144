from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from corral.api.deps import ServicesDep
from corral.api.openapi import content_of

router = APIRouter()


@router.get("/metrics", response_class=Response, responses=content_of("text/plain"))
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format. Engine state is read at scrape time, not polled."""
    t = services.telemetry
    busy_total = 0
    for served in services.registry.all():
        busy = await served.engine.slots_busy()
        busy_total += busy
        t.slots_busy.labels(served.spec.id).set(busy)
    t.in_flight.set(services.admission.in_flight)
    t.queue_depth.set(max(0, services.admission.in_flight - busy_total))
    return Response(generate_latest(t.registry), media_type=CONTENT_TYPE_LATEST)
