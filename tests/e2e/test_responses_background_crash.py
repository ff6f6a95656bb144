"""A background response whose server is SIGKILLed mid-run: after a restart on the same
data dir it reads ``failed`` (a ``server_error``), not ``in_progress`` forever; one running
on a live server keeps its heartbeat and is never failed that way; one whose server shuts
down cleanly is failed at once."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

BEAT_S = 0.5  # stale after 1.5 s
ENV = {"CORRAL_RESPONSES__BACKGROUND_HEARTBEAT_S": str(BEAT_S)}
LONG = "Count from 1 to 1000."
# A schema that cannot end before 400 numbers: the run lasts seconds, whatever the model.
LONG_FORMAT = {
    "format": {
        "type": "json_schema",
        "name": "numbers",
        "schema": {
            "type": "object",
            "properties": {"n": {"type": "array", "items": {"type": "integer"}, "minItems": 400}},
            "required": ["n"],
        },
    }
}


def _client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _start_long(client: openai.OpenAI) -> str:
    queued = client.responses.create(
        model=MODEL, input=LONG, background=True, max_output_tokens=4000, text=LONG_FORMAT
    )
    deadline = time.monotonic() + 60
    while client.responses.retrieve(queued.id).status == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return queued.id


def test_a_killed_servers_background_response_ends_failed(tmp_path: Path) -> None:
    first = LiveServer(tmp_path / "data", env=ENV)
    try:
        first.wait_ready()
        orphan = _start_long(_client(first))
        assert _client(first).responses.retrieve(orphan).status == "in_progress"
    finally:
        first.proc.kill()  # SIGKILL: nothing runs its shutdown
        first.proc.wait(10)
    second = LiveServer(tmp_path / "data", env=ENV)
    try:
        second.wait_ready()
        client = _client(second)
        time.sleep(3 * BEAT_S)
        failed = client.responses.retrieve(orphan)
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "server_error"
        assert client.responses.cancel(orphan).status == "failed"  # terminal: stays so
        # A response running on a live server beats: read after the stale time, it is
        # still running, and it is cancelled as usual.
        running = _start_long(client)
        time.sleep(4 * BEAT_S)
        assert client.responses.retrieve(running).status == "in_progress"
        assert client.responses.cancel(running).status == "cancelled"
    finally:
        second.stop()


def test_a_clean_shutdown_fails_its_background_responses_at_once(tmp_path: Path) -> None:
    slow = {"CORRAL_RESPONSES__BACKGROUND_HEARTBEAT_S": "600"}  # stale only after 30 min
    first = LiveServer(tmp_path / "data", env=slow)
    try:
        first.wait_ready()
        running = _start_long(_client(first))
    finally:
        first.stop()  # SIGTERM: the lifespan's shutdown runs
    second = LiveServer(tmp_path / "data", env=slow)
    try:
        second.wait_ready()
        failed = _client(second).responses.retrieve(running)
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "server_error"
    finally:
        second.stop()
