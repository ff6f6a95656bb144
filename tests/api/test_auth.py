"""Every route but /health, /ready and /favicon.ico is behind auth: checked over the whole
route table."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from corral.api.auth import OPEN_PATHS
from corral.app import create_app
from corral.core.config import Settings
from tests.fakes import fake_registry, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app routes, including routes kept out of the schema."""
    table: set[tuple[str, str]] = set()
    for route in app.routes:
        # FastAPI wraps included routers; their routes are listed by this method.
        contexts = getattr(route, "effective_route_contexts", None)
        entries = contexts() if contexts else [route]
        for entry in entries:
            path = getattr(entry, "path_format", None) or getattr(entry, "path", None)
            for method in getattr(entry, "methods", None) or ():
                if method != "HEAD" and path:
                    table.add((method, path))
    return table


async def test_whole_route_table_needs_a_key(tmp_path: Path) -> None:
    settings = migrated(Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN)))
    app = create_app(settings, fake_registry())
    table = route_table(app)
    for page in ("/models", "/deprecations", "/usage", "/docs", "/openapi.json"):
        assert ("GET", page) in table  # pages outside the OpenAPI schema are covered too
    assert len(table) > 15
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for method, template in sorted(table):
            path = template.replace("{", "").replace("}", "")
            r = await http.request(method, path, json={})
            if template in OPEN_PATHS:  # the probes and the icon
                assert r.status_code == 200, (method, path)
                continue
            if template.startswith(("/console/sign-in", "/console/static/")):
                continue  # the sign-in form and its script (tests/web/test_console.py)
            if method == "GET" and template.startswith("/console") and "/api/" not in template:
                assert r.status_code == 303, (method, path, r.status_code)  # a browser
                assert r.headers["location"].startswith("/console/sign-in")
                continue
            assert r.status_code == 401, (method, path, r.status_code)
            if path.startswith("/v1/messages"):  # Anthropic's shape on its routes
                assert r.json()["error"]["type"] == "authentication_error"
            else:
                assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        # not in the route table at all: still 401, not a 404 that leaks the table
        assert (await http.get("/v1/not-a-route")).status_code == 401
        ok = await http.get("/v1/models", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200


async def test_admin_endpoints_refuse_project_keys(tmp_path: Path) -> None:
    settings = migrated(Settings(data_dir=tmp_path, admin_key=SecretStr(ADMIN)))
    app = create_app(settings, fake_registry())
    admin = {"Authorization": f"Bearer {ADMIN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        project = (
            await http.post("/v1/organization/projects", json={"name": "p"}, headers=admin)
        ).json()
        created = await http.post(
            f"/v1/organization/projects/{project['id']}/api_keys", json={}, headers=admin
        )
        key = created.json()["value"]
        user = {"Authorization": f"Bearer {key}"}
        r = await http.get("/v1/organization/projects", headers=user)
        assert r.status_code == 403
        assert (await http.get("/v1/models", headers=user)).status_code == 200
        listed = await http.get(
            f"/v1/organization/projects/{project['id']}/api_keys", headers=admin
        )
        assert key not in listed.text and listed.json()["data"][0]["redacted_value"]


def test_principal_of_fails_closed() -> None:
    """A request no middleware checked is refused, never taken for an admin."""
    from starlette.requests import Request

    from corral.accounts.keys import ANONYMOUS
    from corral.api.auth import principal_of
    from corral.core.errors import AuthenticationError

    unchecked = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    with pytest.raises(AuthenticationError):
        principal_of(unchecked)
    checked = Request({"type": "http", "headers": [], "state": {"principal": ANONYMOUS}})
    assert principal_of(checked) is ANONYMOUS
