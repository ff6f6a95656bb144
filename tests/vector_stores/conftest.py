"""A corral app in process (no lifespan, no model) on SQLite or PostgreSQL, with a fake
engine whose embeddings are hashed bags of words: fast, deterministic, and lexical, so a
test knows which chunk a query is nearest."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from corral.app import create_app
from corral.core.config import Settings, VectorStoreSettings
from corral.engines.base import Body
from tests.fakes import FakeEngine, fake_registry, migrated

ADMIN = "admin-key-for-tests-0123456789abcdef"
DIMS = 64


class WordsEngine(FakeEngine):
    """Embeds a text as its words hashed into 64 dimensions (unit length)."""

    def __init__(self) -> None:
        super().__init__(context_window=4096)
        self.inputs: list[str] = []

    async def embed(self, body: Body) -> Body:
        inputs = [str(x) for x in body["input"]]
        self.inputs += inputs
        return {
            "data": [{"index": i, "embedding": bag(x)} for i, x in enumerate(inputs)],
            "usage": {"prompt_tokens": sum(len(x.split()) for x in inputs)},
        }


def bag(text: str) -> list[float]:
    v = np.zeros(DIMS, dtype=np.float32)
    for w in re.findall(r"\w+", text.lower()):
        v[int(hashlib.sha1(w.encode()).hexdigest(), 16) % DIMS] += 1.0
    n = float(np.linalg.norm(v)) or 1.0
    return [float(x) / n for x in v]


@dataclass
class App:
    app: FastAPI
    http: httpx.AsyncClient
    a: dict[str, str]
    b: dict[str, str]
    engine: WordsEngine

    async def index(self) -> None:
        """Run the worker until no file waits (the lifespan's task does this live)."""
        worker = self.app.state.services.vector_store_worker
        while (claimed := await worker.jobs.claim()) is not None:
            await worker.execute(claimed)

    async def upload(self, name: str, text: str | bytes, purpose: str = "assistants") -> str:
        data = text.encode() if isinstance(text, str) else text
        r = await self.http.post(
            "/v1/files", data={"purpose": purpose}, files={"file": (name, data)}, headers=self.a
        )
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    async def post(self, path: str, body: dict[str, Any], who: str = "a") -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.a if who == "a" else self.b)

    async def get(self, path: str, who: str = "a", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.a if who == "a" else self.b)


async def key_for(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    project = await http.post("/v1/organization/projects", json={"name": name}, headers=admin)
    path = f"/v1/organization/projects/{project.json()['id']}/api_keys"
    key = (await http.post(path, json={}, headers=admin)).json()["value"]
    return {"Authorization": f"Bearer {key}"}


def vs_settings(**overrides: Any) -> VectorStoreSettings:
    return VectorStoreSettings(**{"embedding_model": "fake-model", **overrides})


@pytest.fixture
def store_settings() -> VectorStoreSettings:
    return vs_settings()


@pytest.fixture
async def vs(
    tmp_path: Path, db_url: str, store_settings: VectorStoreSettings
) -> AsyncIterator[App]:
    engine = WordsEngine()
    settings = migrated(
        Settings(
            data_dir=tmp_path,
            admin_key=SecretStr(ADMIN),
            database_url=db_url,
            vector_stores=store_settings,
        )
    )
    app = create_app(settings, fake_registry(engine))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        a = await key_for(http, "a")
        b = await key_for(http, "b")
        yield App(app, http, a, b, engine)
    await app.state.services.db.close()
