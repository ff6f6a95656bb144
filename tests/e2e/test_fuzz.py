"""schemathesis against the live server's OpenAPI document, with an admin key, over every
operation: generated valid and invalid requests, checked for server errors, status codes
and content types the document declares, response schema conformance, and that an
operation that answered asks for the key it declares (ignored_auth).

`make test` runs a bounded pass (CORRAL_FUZZ_MAX_TIME seconds, 15 by default); `make
fuzz` runs CORRAL_FUZZ_EXAMPLES (500) per operation with no time bound, then the
stateful phase (chains through the document's links) for CORRAL_FUZZ_STATEFUL_TIME. Both
run the real embedded engine; the hooks (fuzz_hooks.py) cap requested lengths so
generation stays short. A failure prints schemathesis' report, with a curl line that reproduces it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "fuzz-admin-key-0123456789abcdef0123"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",  # a body the schema forbids is refused
        "ignored_auth",  # an operation that answered 2xx is asked again without the key
    ]
)


def fuzz(server: LiveServer, out: Path, examples: int, max_time: int) -> tuple[int, str]:
    """Run schemathesis' CLI over the server; (exit code, its output)."""
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEY}",
        "--checks",
        CHECKS,
        "--phases",
        os.environ.get("CORRAL_FUZZ_PHASES", "examples,coverage,fuzzing"),
        "--max-examples",
        str(examples),
        # One worker: with two threads, hypothesis' ast.parse failed inside CPython 3.11
        # ("SystemError: AST constructor recursion depth mismatch") in a `make test` run.
        "--workers",
        os.environ.get("CORRAL_FUZZ_WORKERS", "1"),
        "--seed",
        os.environ.get("CORRAL_FUZZ_SEED", "21"),
        "--request-timeout",
        "120",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(out),
    ]
    if max_time:
        command += ["--max-time", str(max_time)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "CORRAL_FUZZ_COUNTS": str(out / "counts.json"),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=out)
    return done.returncode, done.stdout + done.stderr


def test_fuzz_every_operation(tmp_path: Path) -> None:
    examples = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "20"))
    # The budget is for the whole run: the examples and coverage phases reach every operation
    # whatever it is, and fuzzing repeats until it is spent (15 s: ~1200 calls, 35 s: ~3000
    # and 20 s more of `make test`). `make fuzz` is the long run.
    max_time = int(os.environ.get("CORRAL_FUZZ_MAX_TIME", "15"))
    server = LiveServer(tmp_path / "server", env={"CORRAL_ADMIN_KEY": KEY})
    try:
        server.wait_ready()
        code, output = fuzz(server, tmp_path, examples, max_time)
    finally:
        server.stop()
    counts = json.loads((tmp_path / "counts.json").read_text())
    summary = os.environ.get("CORRAL_FUZZ_SUMMARY")
    if summary:  # make fuzz keeps the figures docs/reliability.md quotes
        Path(summary).write_text(json.dumps({"exit": code, "calls": counts}, indent=1))
        Path(summary).with_suffix(".log").write_text(output)
    assert code == 0, output[-20_000:]
    errors = [line for line in server.log.read_text().splitlines() if "unhandled error" in line]
    assert not errors, errors[:3]
    if "fuzzing" in os.environ.get("CORRAL_FUZZ_PHASES", "fuzzing"):
        operations = {op for op in counts if not op.startswith(("GET /health", "GET /ready"))}
        assert len(operations) >= 50, sorted(counts)  # every operation was reached
