"""HTML pages rendered from the catalog: /models and /deprecations."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from fastapi import APIRouter
from starlette.responses import HTMLResponse

from corral.api.deps import ServicesDep
from corral.catalog.models import ModelsService

router = APIRouter()


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("corral.web", "templates"),
        autoescape=True,  # every value is escaped: catalog text is operator input
        undefined=jinja2.StrictUndefined,
    )


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates().get_template(name).render(**context))


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
async def models_page(services: ServicesDep) -> HTMLResponse:
    return _render("models.html", title="Models", **ModelsService(services.registry).page())


@router.get("/deprecations", response_class=HTMLResponse, include_in_schema=False)
async def deprecations_page(services: ServicesDep) -> HTMLResponse:
    service = ModelsService(services.registry)
    return _render(
        "deprecations.html",
        title="Deprecations",
        today=services.registry.today(),
        rows=service.deprecations().data,
    )
