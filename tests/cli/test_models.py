"""`corral models` shows each upstream pool: as configured when no server answers, and
each replica's live state (read from the server's /metrics) when one does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from corral.catalog.registry import ModelRegistry, PoolCollector
from corral.catalog.schema import ModelSpec
from corral.cli.app import app
from corral.engines.pool import Pool, Replica
from corral.engines.supervisor import Supervisor
from tests.fakes import FakeEngine

runner = CliRunner()
URLS = ["http://10.0.0.1:8001/v1", "http://user:secret@10.0.0.2:8001/v1"]


def catalog(folder: Path) -> Path:
    path = folder / "pools.yaml"
    path.write_text(
        f"""version: 1
families:
  - id: pooled
    name: Pooled
    owner: corral-tests
    description: Served by two upstream replicas.
    context_window: 8192
    capabilities: [chat]
    pricing: {{input: 0.1, cached_input: 0.05, output: 0.2}}
    snapshots:
      - id: pooled-2025-01-01
        stages: {{active: 2025-01-01}}
        source:
          upstream: {{urls: ["{URLS[0]}", "{URLS[1]}"]}}
"""
    )
    return path


class Pooled(FakeEngine):
    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self.pool = pool
        self.supervisors: list[Supervisor] = []


def metrics_text() -> bytes:
    up, down = Replica(URLS[0], api_key="sk-never-shown"), Replica(URLS[1])
    up.served, up.outstanding = 7, 2
    down.failures, down.ejected_until = 3, time.monotonic() + 60
    registry = ModelRegistry()
    registry.add(
        ModelSpec("pooled-2025-01-01", Path("x"), "corral-tests", "pooled"),
        Pooled(Pool([up, down])),
    )
    prometheus = CollectorRegistry()
    prometheus.register(PoolCollector(registry))
    return generate_latest(prometheus)


@pytest.fixture
def server() -> Iterator[str]:
    body = metrics_text()

    class Metrics(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v1"
    finally:
        httpd.shutdown()


def test_metrics_carry_replica_state_without_secrets() -> None:
    text = metrics_text().decode()
    assert 'corral_upstream_served_total{model="pooled-2025-01-01",url="' + URLS[0] in text
    assert (
        'corral_upstream_ejected{model="pooled-2025-01-01",url="http://10.0.0.2:8001/v1"} 1.0'
        in text
    )
    assert "secret" not in text and "sk-never-shown" not in text


def test_configured_pools_when_no_server_answers(tmp_path: Path) -> None:
    args = ["models", "--catalog", str(catalog(tmp_path)), "--url", "http://127.0.0.1:9/v1"]
    result = runner.invoke(app, args, env={"CORRAL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "no server answers at http://127.0.0.1:9/v1" in result.output
    assert URLS[0] in result.output and "http://10.0.0.2:8001/v1" in result.output
    assert "secret" not in result.output


def test_live_replica_state(tmp_path: Path, server: str) -> None:
    args = ["models", "--catalog", str(catalog(tmp_path)), "--url", server]
    result = runner.invoke(app, args, env={"CORRAL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    healthy = next(line for line in lines if line.endswith(URLS[0]))
    assert healthy.split()[1:5] == ["healthy", "2", "7", "0"]
    ejected = next(line for line in lines if line.endswith("http://10.0.0.2:8001/v1"))
    assert ejected.split()[1:5] == ["ejected", "0", "0", "3"]
    assert "secret" not in result.output
