"""The console over a fake engine: sign-in sessions, CSRF, project isolation on every page
and its JSON, HTML escaping, open mode. (In Chromium: tests/e2e/test_console_browser.py.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from corral.api.auth import SESSION_COOKIE
from corral.app import create_app
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec
from corral.core.config import Settings, VectorStoreSettings
from tests.fakes import FakeEngine, fake_registry, migrated

ADMIN = "admin-key-for-console-tests-0123456789"
XSS = "<script>alert(1)</script>"
EVAL = {
    "name": "echo",
    "data_source_config": {
        "type": "custom",
        "item_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "include_sample_schema": True,
    },
    "testing_criteria": [
        {
            "type": "string_check",
            "name": "echoed",
            "input": "{{sample.output_text}}",
            "reference": "{{item.q}}",
            "operation": "eq",
        }
    ],
}


def run_body(q: str) -> dict[str, Any]:
    return {
        "data_source": {
            "type": "completions",
            "model": "fake-model",
            "input_messages": {
                "type": "template",
                "template": [{"role": "user", "content": "{{item.q}}"}],
            },
            "source": {"type": "file_content", "content": [{"item": {"q": q}}]},
        }
    }


@dataclass
class Project:
    id: str
    key: str
    key_id: str
    file_id: str
    job_id: str
    eval_id: str
    run_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


TRAINING = (
    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "'
    + XSS.replace('"', '\\"')
    + '"}]}\n{"messages": []}\nnot json\n'
)


async def make_project(app: FastAPI, http: httpx.AsyncClient, name: str) -> Project:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    project = await http.post("/v1/organization/projects", json={"name": name}, headers=admin)
    pid = project.json()["id"]
    created = (
        await http.post(f"/v1/organization/projects/{pid}/api_keys", json={}, headers=admin)
    ).json()
    auth = {"Authorization": f"Bearer {created['value']}"}
    files = {"file": ("train.jsonl", TRAINING.encode(), "application/jsonl")}
    f = await http.post("/v1/files", data={"purpose": "fine-tune"}, files=files, headers=auth)
    assert f.status_code == 200, f.text
    job = await http.post(
        "/v1/fine_tuning/jobs",
        json={"training_file": f.json()["id"], "model": "fake-model"},
        headers=auth,
    )
    assert job.status_code == 200, job.text
    ev = await http.post("/v1/evals", json=EVAL, headers=auth)
    run = await http.post(f"/v1/evals/{ev.json()['id']}/runs", json=run_body(XSS), headers=auth)
    assert run.status_code == 200, run.text
    worker = app.state.services.eval_worker
    while (run_id := await worker.claim()) is not None:
        await worker.execute(run_id)
    return Project(
        pid,
        created["value"],
        created["id"],
        f.json()["id"],
        job.json()["id"],
        ev.json()["id"],
        run.json()["id"],
    )


def registry(tmp_path: Path) -> ModelRegistry:
    """One fake model whose weights look like a local GGUF (so it can be fine-tuned)."""
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF")
    registry = ModelRegistry()
    registry.add(ModelSpec(id="fake-model", path=base, owned_by="t", description=""), FakeEngine())
    return registry


@pytest.fixture
async def app(tmp_path: Path) -> FastAPI:
    settings = migrated(
        Settings(
            data_dir=tmp_path,
            admin_key=SecretStr(ADMIN),
            vector_stores=VectorStoreSettings(embedding_model="fake-model"),
        )
    )
    return create_app(settings, registry(tmp_path))


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf[-_]token" (?:content|value)="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, key: str) -> str:
    """Signs the client's cookie jar in; returns the session's CSRF token."""
    form = await http.get("/console/sign-in")
    assert form.status_code == 200
    r = await http.post(
        "/console/sign-in",
        data={"key": key, "csrf_token": csrf_of(form.text), "next": "/console/keys"},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/keys"
    cookie = r.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert key not in cookie
    page = await http.get("/console/keys")
    assert page.status_code == 200
    return csrf_of(page.text)


async def test_sign_in_session_and_sign_out(app: FastAPI, http: httpx.AsyncClient) -> None:
    p = await make_project(app, http, "one")
    r = await http.get("/console/playground")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")
    assert (await http.get("/console/api/files/x/check")).status_code == 401
    form = await http.get("/console/sign-in")
    bad = await http.post(
        "/console/sign-in", data={"key": "sk-corral-" + "x" * 43, "csrf_token": csrf_of(form.text)}
    )
    assert bad.status_code == 401 and "Incorrect API key" in bad.text
    forged = await http.post("/console/sign-in", data={"key": p.key, "csrf_token": "forged"})
    assert forged.status_code == 403 and SESSION_COOKIE not in http.cookies
    csrf = await sign_in(http, p.key)
    page = await http.get("/console/playground")
    assert page.status_code == 200 and "fake-model" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "project one" in page.text
    # the session works for the JSON API too, as the key it was made from
    assert (await http.get("/v1/models")).status_code == 200
    # sign-out needs the token too; then the cookie is worth nothing
    assert (await http.post("/console/sign-out", data={})).status_code == 403
    cookie = http.cookies[SESSION_COOKIE]
    out = await http.post("/console/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    http.cookies.set(SESSION_COOKIE, cookie)  # replayed: the session is gone server-side
    assert (await http.get("/console/keys")).status_code == 303
    assert (await http.get("/v1/models")).status_code == 401


async def test_csrf_missing_or_wrong_is_403(app: FastAPI, http: httpx.AsyncClient) -> None:
    p = await make_project(app, http, "one")
    csrf = await sign_in(http, p.key)
    path = f"/v1/organization/projects/{p.id}/api_keys"
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        r = await http.post(path, json={"name": "x"}, headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["error"]["code"] == "csrf_failed"
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    assert (await http.post("/v1/chat/completions", json=chat)).status_code == 403
    bad_form = await http.post("/console/sign-out", data={"csrf_token": "wrong"})
    assert bad_form.status_code == 403
    ok = await http.post(path, json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["value"].startswith("sk-corral-")
    r = await http.post("/v1/chat/completions", json=chat, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    # an API client's bearer key needs no CSRF token (no cookie is read for it)
    r = await http.post("/v1/chat/completions", json=chat, headers=p.auth)
    assert r.status_code == 200


async def test_a_project_key_sees_only_its_project(app: FastAPI, http: httpx.AsyncClient) -> None:
    mine = await make_project(app, http, "mine")
    other = await make_project(app, http, "other")
    csrf = await sign_in(http, mine.key)
    # pages: lists show only this project's; the other project's objects are not found
    keys = (await http.get("/console/keys")).text
    assert mine.key_id in keys and other.key_id not in keys
    files = (await http.get("/console/files")).text
    assert mine.file_id in files and other.file_id not in files
    jobs = (await http.get("/console/fine-tuning")).text
    assert mine.job_id in jobs and other.job_id not in jobs
    evals = (await http.get("/console/evals")).text
    assert mine.run_id in evals and other.run_id not in evals
    for path in (
        f"/console/files/{other.file_id}",
        f"/console/api/files/{other.file_id}/check",
        f"/console/fine-tuning/{other.job_id}",
        f"/console/evals/{other.eval_id}/runs/{other.run_id}",
        f"/console/evals/{mine.eval_id}/compare?a={mine.run_id}&b={other.run_id}",
    ):
        assert (await http.get(path)).status_code == 404, path
    assert (await http.get(f"/console/files/{mine.file_id}")).status_code == 200
    # the same through the JSON API with the session
    base = f"/v1/organization/projects/{other.id}/api_keys"
    assert (await http.get(base)).status_code == 403
    h = {"X-CSRF-Token": csrf}
    assert (await http.post(base, json={}, headers=h)).status_code == 403
    assert (await http.delete(f"{base}/{other.key_id}", headers=h)).status_code == 403
    # a key id of another project under this project's path: not found, not revoked
    mine_base = f"/v1/organization/projects/{mine.id}/api_keys"
    assert (await http.delete(f"{mine_base}/{other.key_id}", headers=h)).status_code == 404
    assert (await http.get("/v1/models", headers=other.auth)).status_code == 200
    for path in (
        f"/v1/files/{other.file_id}",
        f"/v1/fine_tuning/jobs/{other.job_id}",
        f"/v1/evals/{other.eval_id}/runs/{other.run_id}",
    ):
        assert (await http.get(path)).status_code == 404, path
    listed = (await http.get(mine_base)).json()["data"]
    assert {k["id"] for k in listed} == {mine.key_id}
    # an admin sees every project's keys
    admin_keys = await http.get("/console/keys", headers={"Authorization": f"Bearer {ADMIN}"})
    assert mine.key_id in admin_keys.text and other.key_id in admin_keys.text


async def test_revoking_the_key_ends_its_session(app: FastAPI, http: httpx.AsyncClient) -> None:
    p = await make_project(app, http, "one")
    csrf = await sign_in(http, p.key)
    r = await http.delete(
        f"/v1/organization/projects/{p.id}/api_keys/{p.key_id}", headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    assert (await http.get("/v1/models", headers=p.auth)).status_code == 401
    assert (await http.get("/console/keys")).status_code == 303
    assert (await http.get("/v1/models")).status_code == 401


async def test_model_output_and_file_contents_are_escaped(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    p = await make_project(app, http, "one")
    await sign_in(http, p.key)
    run = await http.get(f"/console/evals/{p.eval_id}/runs/{p.run_id}")
    assert run.status_code == 200
    assert XSS not in run.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in run.text
    compare = await http.get(f"/console/evals/{p.eval_id}/compare?a={p.run_id}&b={p.run_id}")
    assert compare.status_code == 200 and XSS not in compare.text
    page = await http.get(f"/console/files/{p.file_id}")
    assert XSS not in page.text and "&lt;script&gt;" in page.text
    # and the file's lines are checked one by one, each bad line named
    assert "line 2: missing `messages`" in page.text and "line 3: invalid JSON" in page.text
    check = (await http.get(f"/console/api/files/{p.file_id}/check")).json()
    assert check["examples"] == 1 and [e["line"] for e in check["errors"]] == [2, 3]


async def test_open_mode_needs_no_sign_in_but_still_csrf(tmp_path: Path) -> None:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/console/sign-in")).status_code == 303
        page = await http.get("/console/playground")
        assert page.status_code == 200 and "Open mode" in page.text
        assert SESSION_COOKIE in http.cookies
        assert 'id="sign-out"' not in page.text
        assert (await http.post("/console/sign-out", data={})).status_code == 403
        csrf = csrf_of(page.text)
        r = await http.post("/console/sign-out", data={"csrf_token": csrf})
        assert r.status_code == 303


async def test_eval_runs_again_on_another_model(app: FastAPI, http: httpx.AsyncClient) -> None:
    p = await make_project(app, http, "one")
    csrf = await sign_in(http, p.key)
    path = f"/console/api/evals/{p.eval_id}/runs/{p.run_id}/rerun"
    assert (await http.post(path, json={"model": "fake-model"})).status_code == 403
    r = await http.post(path, json={"model": "fake-model"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["result_counts"]["total"] == 1


async def test_usage_pages_are_per_project(app: FastAPI, http: httpx.AsyncClient) -> None:
    mine = await make_project(app, http, "mine")
    other = await make_project(app, http, "other")
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    await http.post("/v1/chat/completions", json=chat, headers=mine.auth)
    for _ in range(3):
        await http.post("/v1/chat/completions", json=chat, headers=other.auth)
    row = re.compile(r"<td><code>fake-model</code></td><td>(\d+)</td>")
    await sign_in(http, mine.key)
    page = await http.get("/console/usage")
    assert page.status_code == 200 and "project mine" in page.text
    assert [int(n) for n in row.findall(page.text)] == [2]  # its eval item and its chat
    assert 'id="project-usage"' not in page.text
    admin = await http.get("/console/usage", headers={"Authorization": f"Bearer {ADMIN}"})
    assert [int(n) for n in row.findall(admin.text)] == [6]
    assert "<td>mine</td><td>2</td>" in admin.text and "<td>other</td><td>4</td>" in admin.text


async def test_an_admin_works_in_one_project_at_a_time(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    mine = await make_project(app, http, "mine")
    other = await make_project(app, http, "other")
    csrf = await sign_in(http, ADMIN)
    page = (await http.get("/console/files")).text
    assert 'id="project-switch"' in page and mine.file_id not in page
    assert (await http.get(f"/v1/files/{mine.file_id}")).status_code == 404
    # no token, then a project that does not exist
    assert (await http.post("/console/project", data={"project_id": mine.id})).status_code == 403
    r = await http.post("/console/project", data={"project_id": "proj-nope", "csrf_token": csrf})
    assert r.status_code == 404
    r = await http.post(
        "/console/project",
        data={"project_id": mine.id, "csrf_token": csrf, "next": "/console/files"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/files"
    page = (await http.get("/console/files")).text
    assert mine.file_id in page and other.file_id not in page
    assert (await http.get(f"/v1/files/{mine.file_id}")).status_code == 200  # the JSON too
    assert (await http.get(f"/console/fine-tuning/{mine.job_id}")).status_code == 200
    assert (await http.get(f"/v1/fine_tuning/jobs/{other.job_id}")).status_code == 404
    await http.post("/console/project", data={"project_id": "", "csrf_token": csrf})
    assert (await http.get(f"/v1/files/{mine.file_id}")).status_code == 404
    # a project key's session cannot
    http.cookies.clear()
    csrf = await sign_in(http, mine.key)
    r = await http.post("/console/project", data={"project_id": other.id, "csrf_token": csrf})
    assert r.status_code == 403
    assert 'id="project-switch"' not in (await http.get("/console/files")).text


async def test_a_long_run_pages_its_items(app: FastAPI, http: httpx.AsyncClient) -> None:
    p = await make_project(app, http, "one")
    body = run_body("x")
    body["data_source"]["source"]["content"] = [{"item": {"q": f"q{i}"}} for i in range(101)]
    run = (await http.post(f"/v1/evals/{p.eval_id}/runs", json=body, headers=p.auth)).json()
    worker = app.state.services.eval_worker
    while (run_id := await worker.claim()) is not None:
        await worker.execute(run_id)
    await sign_in(http, p.key)
    first = (await http.get(f"/console/evals/{p.eval_id}/runs/{run['id']}")).text
    assert first.count('<tr class="grade-') == 100
    more = re.search(r'id="more-items" href="([^"]+)"', first)
    assert more
    rest = (await http.get(f"/console/evals/{p.eval_id}/runs/{run['id']}" + more.group(1))).text
    assert rest.count('<tr class="grade-') == 1 and "q100" in rest and 'id="more-items"' not in rest


async def test_every_page_has_an_icon_the_csp_allows(http: httpx.AsyncClient) -> None:
    """Browsers logged a 404 for /favicon.ico on every console page: the pages link an icon
    from this origin (the CSP's img-src 'self'), and /favicon.ico answers too, with no key."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    project = await http.post("/v1/organization/projects", json={"name": "i"}, headers=admin)
    made = await http.post(
        f"/v1/organization/projects/{project.json()['id']}/api_keys", json={}, headers=admin
    )
    signin = (await http.get("/console/sign-in")).text
    await sign_in(http, made.json()["value"])
    page = await http.get("/console/keys")
    assert "img-src 'self'" in page.headers["content-security-policy"]
    for html in (signin, page.text):
        icons = re.findall(r'<link rel="icon" href="([^"]+)" type="([^"]+)">', html)
        assert icons == [("/console/static/favicon.svg", "image/svg+xml")], html[:600]
    http.cookies.clear()  # a browser asks before it signs in, with no key at all
    for path in ("/console/static/favicon.svg", "/favicon.ico"):
        icon = await http.get(path)
        assert icon.status_code == 200, (path, icon.text)
        assert icon.headers["content-type"] == "image/svg+xml"
        assert icon.headers["x-content-type-options"] == "nosniff"
        assert icon.content.startswith(b"<svg") and b"<script" not in icon.content


def row_of(html: str, needle: str) -> str:
    """The table row (``<tr>…</tr>``) that holds the needle."""
    return next(r for r in html.split("<tr>") if needle in r).split("</tr>")[0]


async def make_store(app: FastAPI, http: httpx.AsyncClient, p: Project) -> dict[str, Any]:
    """A store of the project with a text file indexed (attributes, a name with markup)
    and a binary one that fails; the worker run until no file waits."""
    ids = {}
    for name, data in (
        ("notes.md", b"# Notes\n\nThe VPN code is ZX-9042."),
        ("blob.bin", b"\xff\x00\x01\xfe"),
    ):
        f = await http.post(
            "/v1/files",
            data={"purpose": "assistants"},
            files={"file": (name, data)},
            headers=p.auth,
        )
        assert f.status_code == 200, f.text
        ids[name] = f.json()["id"]
    made = await http.post(
        "/v1/vector_stores",
        json={
            "name": XSS,
            "metadata": {"team": "it"},
            "expires_after": {"anchor": "last_active_at", "days": 7},
        },
        headers=p.auth,
    )
    assert made.status_code == 200, made.text
    store_id = made.json()["id"]
    for file_id, attributes in (
        (ids["notes.md"], {"kind": "policy", "year": 2026, "note": XSS}),
        (ids["blob.bin"], None),
    ):
        r = await http.post(
            f"/v1/vector_stores/{store_id}/files",
            json={"file_id": file_id, "attributes": attributes},
            headers=p.auth,
        )
        assert r.status_code == 200, r.text
    worker = app.state.services.vector_store_worker
    while (claimed := await worker.jobs.claim()) is not None:
        await worker.execute(claimed)
    store = (await http.get(f"/v1/vector_stores/{store_id}", headers=p.auth)).json()
    assert store["file_counts"]["completed"] == 1 and store["file_counts"]["failed"] == 1
    return {"store": store, "text": ids["notes.md"], "blob": ids["blob.bin"]}


async def test_vector_stores_pages_show_the_projects_stores_and_files(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    mine = await make_project(app, http, "mine")
    other = await make_project(app, http, "other")
    made, theirs = await make_store(app, http, mine), await make_store(app, http, other)
    store = made["store"]
    await sign_in(http, mine.key)
    page = await http.get("/console/vector-stores")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # no inline script: every script tag loads a file of this origin
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script src="/console/static/console.js" defer>'
    ]
    assert '<a href="/console/vector-stores" aria-current="page">Vector stores</a>' in page.text
    html = page.text
    assert store["id"] in html and theirs["store"]["id"] not in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # its name
    row = row_of(html, store["id"])
    assert '<td class="state">completed</td>' in row and "1/2 indexed, 1 failed" in row
    assert f'<td class="bytes">{store["usage_bytes"]}</td>' in row and store["usage_bytes"] > 0
    assert f'data-unix="{store["created_at"]}"' in row
    assert f'data-unix="{store["expires_at"]}"' in row
    # the store's page: each file with its name, status, error, sizes and attributes
    detail = await http.get(f"/console/vector-stores/{store['id']}")
    assert detail.status_code == 200
    html = detail.text
    assert XSS not in html and '<code id="store-id">' + store["id"] in html
    assert "<code>team</code>: it" in html and "(7 days after last use)" in html
    files = html[html.index('id="store-files-table"') :]
    text_row = row_of(files, made["text"])
    assert f'<a href="/console/files/{made["text"]}">notes.md</a>' in text_row
    assert '<td class="state">completed</td>' in text_row
    assert (
        '<code>kind</code>="policy", <code>year</code>=2026, <code>note</code>="\\u003c' in text_row
    )
    file_obj = (
        await http.get(f"/v1/vector_stores/{store['id']}/files/{made['text']}", headers=mine.auth)
    ).json()
    assert f'<td class="bytes">{file_obj["usage_bytes"]}</td>' in text_row
    blob_row = row_of(files, f'<a href="/console/files/{made["blob"]}">blob.bin</a>')
    assert '<td class="state">failed</td>' in blob_row
    assert '<td class="error">unsupported_file: ' in blob_row
    # another project's store (and a made-up one) is not found, here as in the API
    for path in (
        f"/console/vector-stores/{theirs['store']['id']}",
        "/console/vector-stores/vs_nope",
    ):
        assert (await http.get(path)).status_code == 404, path
    assert (
        await http.get(f"/console/vector-stores/{store['id']}", headers=other.auth)
    ).status_code == 404
