"""The supervisor launches a real engine process (here: another corral), restarts it with
backoff when it dies, and stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from corral.engines import supervisor as supervisor_module
from corral.engines.supervisor import Supervisor

pytestmark = pytest.mark.slow


async def test_launch_restart_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_module, "BACKOFF_S", (0.2,))
    command = f"{sys.executable} -m corral serve --port {{port}}"
    sup = Supervisor(
        command,
        name="child",
        log_dir=tmp_path,
        env={"CORRAL_DATA_DIR": str(tmp_path / "child")},
        start_timeout_s=120,
    )
    await sup.start()
    try:
        assert sup.state == "ready"
        async with httpx.AsyncClient() as http:
            assert (await http.get(sup.url + "/v1/models")).status_code == 200
        first_pid = sup.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)  # the engine crashes
        deadline = time.monotonic() + 120
        while not (sup.restarts == 1 and sup.state == "ready"):
            assert time.monotonic() < deadline, "not restarted"
            await asyncio.sleep(0.1)
        assert sup.pid != first_pid
        async with httpx.AsyncClient() as http:
            assert (await http.get(sup.url + "/v1/models")).status_code == 200
    finally:
        await sup.stop()
    assert sup.state == "stopped"
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.TransportError):
            await http.get(sup.url + "/health", timeout=2)


def test_command_needs_a_port(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="port"):
        Supervisor("vllm serve model", name="x", log_dir=tmp_path)
