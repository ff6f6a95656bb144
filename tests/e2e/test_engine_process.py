"""The embedded engine in its own process (engine.isolation=process): a crash of llama.cpp
fails the stream it was serving, /ready answers 503 while it is down, the supervisor
brings it back; and the engine never outlives the server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from corral.engines.child import ENV_KEY
from tests.conftest import MODEL, MODEL_SNAPSHOT, LiveServer

pytestmark = pytest.mark.slow

PROCESS_ENV = {"CORRAL_ENGINE__ISOLATION": "process", "CORRAL_FINE_TUNING__WORKER": "false"}


# Linux /proc, read directly: what the engine child looks like from outside.


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:  # exited meanwhile
        return []


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def engine_pid(server: LiveServer, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engines = [
            c
            for c in children(server.proc.pid)
            if running(c) and "corral.engines.child" in cmdline(c)
        ]
        if len(engines) == 1:
            return engines[0]
        time.sleep(0.1)
    raise AssertionError("no single engine child process")


def gone(pid: int, timeout: float = 20.0) -> bool:
    """Not running: exited (reaped, or a zombie waiting for whoever adopted it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.1)
    return False


def started(folder: Path) -> LiveServer:
    server = LiveServer(folder, env=PROCESS_ENV)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = started(tmp_path_factory.mktemp("engine-process"))
    try:
        yield live
    finally:
        live.stop()


class ReadyWatch(threading.Thread):
    """Polls /ready until it has seen the server unready and then ready again."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.url, self.timeout = url, timeout
        self.codes: list[int] = []
        self.recovered_after: float | None = None

    def run(self) -> None:
        start = time.monotonic()
        while time.monotonic() - start < self.timeout:
            try:
                code = httpx.get(self.url + "/ready", timeout=30).status_code
            except httpx.TransportError:
                code = 0
            self.codes.append(code)
            if code == 200 and 503 in self.codes:
                self.recovered_after = time.monotonic() - start
                return
            time.sleep(0.05)


def test_engine_crash_mid_stream_errors_goes_unready_and_recovers(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    victim = engine_pid(server)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story."}],
        max_tokens=400,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    watch = ReadyWatch(server.url)
    pieces = 0
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                if pieces == 3:
                    os.kill(victim, signal.SIGKILL)
                    watch.start()
    assert pieces >= 3
    watch.join()
    assert 503 in watch.codes and watch.codes[-1] == 200, watch.codes
    assert engine_pid(server) != victim
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.choices[0].message.content is not None
    engine = httpx.get(server.url + "/ready", timeout=30).json()["engines"][MODEL_SNAPSHOT]
    assert engine["process"] == "ready" and engine["restarts"] == 1
    assert engine["measured_mib"] > 50  # the child's memory, not the API's
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert "corral_engine_restarts_total{" in metrics
    assert 'corral_upstream_healthy{model="smollm2' in metrics


def test_the_engine_key_stays_out_of_argv_and_logs(server: LiveServer) -> None:
    child = engine_pid(server)
    key = environ(child)[ENV_KEY]
    argv = cmdline(child)
    assert key not in " ".join(argv)
    port = argv[argv.index("--port") + 1]
    listener = f"http://127.0.0.1:{port}"
    assert httpx.get(listener + "/v1/models").status_code == 401
    for path in ("/completion", "/v1/chat/completions", "/v1/embeddings", "/slots"):
        for headers in ({}, {"Authorization": "Bearer guessed"}):
            body = {"prompt": "x", "messages": [{"role": "user", "content": "x"}]}
            refused = httpx.post(listener + path, json=body, headers=headers, timeout=10)
            assert refused.status_code == 401, (path, headers)
    authed = httpx.get(listener + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert authed.status_code == 200
    logs = [server.log, *server.log.parent.glob("engines/*.log")]
    assert len(logs) > 1
    assert not [log for log in logs if key in log.read_text(errors="replace")]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_engine_dies_with_the_server(tmp_path: Path, how: signal.Signals) -> None:
    live = started(tmp_path / "server")
    child = engine_pid(live)
    try:
        live.proc.send_signal(how)
        live.proc.wait(30)
        assert gone(child), f"engine {child} outlived the server ({how.name})"
    finally:
        live.stop()
