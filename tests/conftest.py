"""Shared fixtures: settings on a temporary data dir, a live server on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.core.config import Settings
from tests import loop_guard

MODEL = "smollm2-135m-instruct"
MODEL_SNAPSHOT = "smollm2-135m-instruct-2024-11-01"  # what the alias MODEL resolves to


def pytest_configure(config: pytest.Config) -> None:
    loop_guard.install()
    _share_bytecode()
    _share_fine_tuning_base(config)
    _one_thread_per_worker()


def _one_thread_per_worker() -> None:
    """Under pytest-xdist (``TEST_WORKERS=2 make test`` on this 2-core box) each engine
    and each training worker the workers start gets one thread, so the two workers' children fit
    the two cores instead of spinning against each other (with llama.cpp's and torch's
    default of a thread per core, two workers took 58% more CPU than one process and
    finished later). A setting the caller chose is kept."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    os.environ.setdefault("CORRAL_ENGINE__N_THREADS", "1")
    os.environ.setdefault("CORRAL_FINE_TUNING__THREADS", "1")


def _share_fine_tuning_base(config: pytest.Config) -> None:
    """One disk cache of the converted fine-tuning base for the session: each live
    server's worker would otherwise convert the embedded GGUF again (~20 s a job start,
    five starts in tests/e2e/test_fine_tuning.py). The conversion itself and the cache
    are tested in tests/tuning/test_lora.py, each with its own directory."""
    if os.environ.get("CORRAL_FINE_TUNING__BASE_CACHE_DIR"):
        return
    cache = tempfile.mkdtemp(prefix="corral-test-bases-")
    os.environ["CORRAL_FINE_TUNING__BASE_CACHE_DIR"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


def _share_bytecode() -> None:
    """Let the suite's Python processes cache the bytecode they compile.

    Every live server, engine child, training worker and CLI run is a new interpreter that
    imports ~1000 modules (SQLAlchemy, FastAPI, pydantic, corral). Where
    ``PYTHONDONTWRITEBYTECODE`` is set (CI images and sandboxes often set it) none of them
    may cache what it compiles, so each start spent ~3 s of CPU compiling corral's sources
    again (a live server ready in ~10 s without a cache, ~5.5 s with one). The caches go
    beside the sources (``__pycache__``, ignored by git). Not to a prefix of this session
    (``PYTHONPYCACHEPREFIX``, as this did before): with a prefix Python no longer reads the
    bytecode ``make install`` compiled into the venv, and each session compiled and wrote
    ~5,900 modules of it again (collecting the suite took 24.3 s with a prefix, 17.6 s
    without on the first run, 11.0 s on the next).
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    sys.dont_write_bytecode = False  # this process's imports from here on write it too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


class LiveServer:
    """`corral serve` in a child process, as a user runs it."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "CORRAL_DATA_DIR": str(data_dir), **(env or {})}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corral", "serve", "--port", str(self.port)],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        # One client for the whole wait: a client per try builds a TLS context each time,
        # 25 ms of CPU per try (~20% of a core) taken from the server that is starting.
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
                try:
                    if http.get(self.url + "/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"server not ready: {self.log.read_text()[-3000:]}")

    def gauges(self, *names: str) -> dict[str, float]:
        """The named samples of the server's /metrics, as they stand now."""
        text = httpx.get(self.url + "/metrics").text
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in names
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# The port of the session's MCP test server (tests/mcp_server.py, started by the tests
# that need it): the shared live server may reach it, and nothing else.
MCP_PORT = free_port()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    mcp = {
        "CORRAL_MCP__ALLOWED_URLS": f"http://127.0.0.1:{MCP_PORT}/mcp",
        "CORRAL_MCP__TIMEOUT_S": "4",
    }
    server = LiveServer(tmp_path_factory.mktemp("live"), env=mcp)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- databases: every storage/accounts test runs on SQLite and on a real PostgreSQL ---

POSTGRES_ADMIN_URL = os.environ.get(
    "CORRAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def fresh_postgres_database() -> tuple[str, Callable[[], None]]:
    """A new, empty database on the test server, and a function that drops it."""
    import secrets as _secrets

    import psycopg

    name = f"corral_test_{_secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'corral.db'}"
        return
    if not _postgres_available():
        if os.environ.get("CORRAL_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL required but not reachable at {POSTGRES_ADMIN_URL}")
        pytest.skip("no PostgreSQL reachable (CI sets CORRAL_REQUIRE_POSTGRES=1)")
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        drop()
