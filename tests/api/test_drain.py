"""Draining (the app's side of a graceful shutdown) over a fake engine."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corral.api.drain import Drain, ShuttingDownError
from corral.app import create_app
from corral.core.config import Settings
from tests.fakes import FakeEngine, fake_registry, migrated


def test_a_stream_is_cut_at_its_next_event_once_the_grace_ends() -> None:
    drain = Drain()
    got = []
    with pytest.raises(ShuttingDownError) as cut:
        for n in range(10):
            drain.check()  # what the meter's stage reads between events
            got.append(n)
            if n == 2:
                drain.expire()
    assert got == [0, 1, 2] and cut.value.headers["retry-after"] == "1"


async def test_draining_refuses_new_work_and_says_unready(tmp_path: Path) -> None:
    app = create_app(migrated(Settings(data_dir=tmp_path)), fake_registry(FakeEngine()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
        assert (await http.get("/ready")).status_code == 200
        drain: Drain = app.state.services.drain
        assert drain.active == 0 and await drain.idle(0.1)
        drain.begin()
        r = await http.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "server_shutting_down"
        anthropic = await http.post("/v1/messages", json={**body, "max_tokens": 4})
        assert anthropic.status_code in (503, 529)
        assert anthropic.json()["type"] == "error"  # in the dialect's own shape
        ready = await http.get("/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "draining"}
        assert (await http.get("/health")).status_code == 200
