"""Graceful shutdown of a live `corral serve`: SIGTERM with streams in flight.

Draining, /ready is 503 and new work is refused with 503 and retry-after; the streams in
flight finish whole; a second SIGTERM ends a stream still running (as the end of the
grace period does) with an error event, billed for what it generated; the process exits 0.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

GRACE_S = 120  # longer than the test: the second signal is what ends the long stream


class Stream(threading.Thread):
    """A chat stream read to its end: its text, finish reason and any error event."""

    def __init__(self, url: str, max_tokens: int, **extra: Any) -> None:
        super().__init__(daemon=True)
        self.client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        self.max_tokens, self.extra = max_tokens, extra
        self.started = threading.Event()
        self.pieces = 0
        self.finish: str | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            stream = self.client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Count from one to twenty."}],
                max_tokens=self.max_tokens,
                stream=True,
                extra_body=self.extra,
            )
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        self.pieces += 1
                        self.started.set()
                    self.finish = choice.finish_reason or self.finish
        except Exception as exc:  # the error event of a cut stream
            self.error = exc
        finally:
            self.started.set()


def test_sigterm_drains_streams_and_exits_0(tmp_path: Path) -> None:
    env = {"CORRAL_SHUTDOWN_GRACE_S": str(GRACE_S), "CORRAL_FINE_TUNING__WORKER": "false"}
    server = LiveServer(tmp_path / "data", env=env)
    try:
        server.wait_ready()
        short = [Stream(server.url, 12) for _ in range(4)]
        long = Stream(server.url, 4000, ignore_eos=True)  # runs until the second signal
        for s in (*short, long):
            s.start()
        for s in (*short, long):
            assert s.started.wait(60)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

        ready = httpx.get(server.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        refused = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            timeout=5,
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "server_shutting_down"

        for s in short:  # in flight at the signal: finished whole
            s.join(90)
            assert s.error is None and s.finish in ("stop", "length"), (s.error, s.finish)
        assert long.is_alive() and server.proc.poll() is None  # still draining
        server.proc.send_signal(signal.SIGTERM)  # the second signal: end it now
        long.join(30)
        assert isinstance(long.error, openai.APIError), long.error
        assert "shutting down" in str(long.error)
        assert server.proc.wait(30) == 0
        assert time.monotonic() - signalled < GRACE_S
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    rows = sqlite3.connect(tmp_path / "data" / "corral.db").execute(
        "SELECT status, completion_tokens FROM usage"
    )
    statuses = sorted(status for status, _ in rows)
    # Every stream billed: the cut one for what it generated before the cut.
    assert statuses.count("ok") == 4 and "cancelled" in statuses, statuses
    log = server.log.read_text()
    assert "draining" in log and "Traceback" not in log
