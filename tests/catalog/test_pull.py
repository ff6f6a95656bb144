"""`corral pull` and `corral models` against a fake Hub on 127.0.0.1 (never the internet):
progress, resume after a dropped connection, sha256 checks, offline failing fast."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses and a fake Hub: ~30 s

REPO, FILE = "corral-test/tiny-GGUF", "tiny.gguf"
# 24 MiB: past huggingface_hub's 10 MiB write chunk, so a cut download leaves a part
PAYLOAD = b"GGUF" + bytes(range(256)) * (96 * 1024)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FakeHub(BaseHTTPRequestHandler):
    """Answers like the Hub's /resolve/ endpoint; drops the first GET halfway."""

    ranges: list[str | None] = []  # noqa: RUF012
    drop_first = True
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def _headers(self, status: int, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", "a" * 40)
        self.send_header("ETag", f'"{SHA}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def _known(self) -> bool:
        if self.path != f"/{REPO}/resolve/main/{FILE}":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return False
        return True

    def do_HEAD(self) -> None:
        if self._known():
            self._headers(200, len(PAYLOAD), {})

    def do_GET(self) -> None:
        if not self._known():
            return
        wanted = self.headers.get("Range")
        FakeHub.ranges.append(wanted)
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted else 0
        body = PAYLOAD[start:]
        if wanted:
            end = len(PAYLOAD) - 1
            self._headers(206, len(body), {"Content-Range": f"bytes {start}-{end}/{len(PAYLOAD)}"})
        else:
            self._headers(200, len(body), {})
        if FakeHub.drop_first:
            FakeHub.drop_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def hub() -> Iterator[str]:
    FakeHub.ranges, FakeHub.drop_first = [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def catalog(tmp_path: Path, sha: str | None = SHA) -> Path:
    path = tmp_path / "catalog.yaml"
    pin = f'\n            sha256: "{sha}"' if sha else ""
    path.write_text(
        f"""\
families:
  - id: tiny-hub
    name: Tiny from the Hub
    owner: test
    description: A file on a fake Hub.
    context_window: 2048
    capabilities: [chat]
    pricing: {{input: 1, output: 1}}
    snapshots:
      - id: tiny-hub-2025-01-01
        stages: {{active: 2025-01-01}}
        source:
          hf:
            repo: {REPO}
            file: {FILE}{pin}
"""
    )
    return path


def corral(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "CORRAL_DATA_DIR": str(tmp_path / "data"), **env}
    if "HF_HUB_OFFLINE" not in env:
        full.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pull_resumes_checks_sha_and_lists_local(tmp_path: Path, hub: str) -> None:
    cat = str(catalog(tmp_path))
    # stderr is a pipe here, not a terminal: TQDM_POSITION=-1 keeps the bar on
    env = {"HF_ENDPOINT": hub, "TQDM_POSITION": "-1"}
    done = corral(tmp_path, "pull", "tiny-hub", "--catalog", cat, env=env)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "data/models/corral-test--tiny-GGUF/tiny.gguf"
    assert done.stdout.strip() == f"tiny-hub: {target}"
    assert target.read_bytes() == PAYLOAD
    # the first GET was cut halfway; the retry asked for the rest only
    assert FakeHub.ranges[0] is None and len(FakeHub.ranges) == 2
    resumed_at = int(str(FakeHub.ranges[1]).removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(PAYLOAD) // 2
    assert "%" in done.stderr  # the progress bar
    listed = corral(tmp_path, "models", "--catalog", cat, env={})
    row = next(line for line in listed.stdout.splitlines() if line.startswith("tiny-hub-"))
    assert "local" in row and "tiny-hub" in row.split()[-1]
    assert "pullable" in next(
        line for line in listed.stdout.splitlines() if line.startswith("llama3.1-8b-")
    )


def test_pull_refuses_a_wrong_sha256(tmp_path: Path, hub: str) -> None:
    cat = str(catalog(tmp_path, sha="0" * 64))
    done = corral(tmp_path, "pull", "tiny-hub", "--catalog", cat, env={"HF_ENDPOINT": hub})
    assert done.returncode == 1
    assert "sha256 mismatch" in done.stderr and SHA in done.stderr
    assert not (tmp_path / "data/models/corral-test--tiny-GGUF/tiny.gguf").exists()


def test_pull_without_catalog_sha_checks_the_hubs(tmp_path: Path, hub: str) -> None:
    cat = str(catalog(tmp_path, sha=None))
    done = corral(tmp_path, "pull", "tiny-hub", "--catalog", cat, env={"HF_ENDPOINT": hub})
    assert done.returncode == 0, done.stderr


def test_offline_fails_fast(tmp_path: Path) -> None:
    cat = str(catalog(tmp_path))
    start = time.monotonic()
    done = corral(tmp_path, "pull", "tiny-hub", "--catalog", cat, env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1 and "offline" in done.stderr
    # nothing listens on this port: refused at once, a clear message, no traceback
    closed = "http://127.0.0.1:9"
    done = corral(tmp_path, "pull", "tiny-hub", "--catalog", cat, env={"HF_ENDPOINT": closed})
    assert done.returncode == 1 and "cannot reach the Hub" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 20  # huggingface_hub alone retried for 23 s


def test_pull_refuses_what_is_not_on_the_hub(tmp_path: Path) -> None:
    done = corral(tmp_path, "pull", "smollm2-135m-instruct", env={})
    assert done.returncode == 1 and "nothing to pull" in done.stderr
    done = corral(tmp_path, "pull", "no-such-model", env={})
    assert done.returncode == 1 and "not in the catalog" in done.stderr


def test_serve_refuses_a_catalog_breaking_the_three_month_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """\
families:
  - id: llama3.1-8b
    name: Llama 3.1 8B Instruct
    owner: meta
    description: An early shutdown.
    context_window: 131072
    capabilities: [chat]
    pricing: {input: 0.1, output: 0.2}
    snapshots:
      - id: llama3.1-8b-2024-07-23
        stages: {active: 2024-07-23, deprecated: 2025-01-01, shutdown: 2025-02-01}
        replacement: llama3.1-8b-2025-01-01
        source: {path: x.gguf}
      - id: llama3.1-8b-2025-01-01
        stages: {active: 2025-01-01}
        source: {path: x.gguf}
"""
    )
    done = corral(tmp_path, "serve", "--catalog", str(bad), "--port", "0", env={})
    assert done.returncode == 2
    assert f"{bad}:11: families.0.snapshots.0.stages.shutdown" in done.stderr
    assert "earliest allowed shutdown is 2025-04-01" in done.stderr
