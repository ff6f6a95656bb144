"""Hostile requests against the live server and its real engine: no request field makes
corral (or llama.cpp behind it) connect to a URL the client chose, and no file name, file
id or model id reaches outside the data directory."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.catalog.schema import embedded_model_path
from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow


class Canary:
    """A listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/pic.png"
        self.hits = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    try:
        yield c
    finally:
        c.close()


def requests_naming(url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every place a client of OpenAI's or Anthropic's API may put a URL."""
    chat = {"model": MODEL, "max_tokens": 2}
    return [
        (
            "/v1/chat/completions",
            {
                **chat,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Describe it."},
                            {"type": "image_url", "image_url": {"url": url}},
                        ],
                    }
                ],
            },
        ),
        ("/v1/chat/completions", {**chat, "messages": [], "base_url": url}),
        ("/v1/chat/completions", {**chat, "messages": [], "api_base": url}),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "max_output_tokens": 16,
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "Describe it."},
                            {"type": "input_image", "image_url": url},
                            {"type": "input_file", "file_url": url},
                        ],
                    }
                ],
            },
        ),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "max_output_tokens": 16,
                "input": "hi",
                "tools": [{"type": "mcp", "server_label": "x", "server_url": url}],
            },
        ),
        (
            "/v1/messages",
            {
                "model": MODEL,
                "max_tokens": 2,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": url}},
                            {"type": "document", "source": {"type": "url", "url": url}},
                            {"type": "text", "text": "Describe it."},
                        ],
                    }
                ],
            },
        ),
        (
            "/v1/messages",
            {
                "model": MODEL,
                "max_tokens": 2,
                "messages": [{"role": "user", "content": "hi"}],
                "mcp_servers": [{"type": "url", "url": url, "name": "x"}],
            },
        ),
        ("/v1/embeddings", {"model": MODEL, "input": url}),
    ]


def test_no_request_field_makes_corral_connect(live_server: LiveServer, canary: Canary) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        for path, body in requests_naming(canary.url):
            r = http.post(path, json=body)
            assert r.status_code < 500, (path, r.text)
        # A batch whose line names a URL of its own, not the batch's endpoint.
        line = {"custom_id": "a", "method": "POST", "url": canary.url, "body": {"model": MODEL}}
        files = {"file": ("b.jsonl", json.dumps(line).encode() + b"\n")}
        made = http.post("/v1/files", data={"purpose": "batch"}, files=files)
        body = {"input_file_id": made.json()["id"], "completion_window": "24h"}
        for endpoint in ("/v1/chat/completions", canary.url):
            r = http.post("/v1/batches", json={**body, "endpoint": endpoint})
            # refused, or failed at validation as OpenAI's batches are: never run
            assert r.status_code == 400 or r.json()["status"] == "failed", r.text
    time.sleep(0.5)  # room for a connection that would come late
    assert canary.hits == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(canary.url, timeout=2)
    assert canary.hits == 1  # the canary does count a connection


def test_file_names_and_ids_stay_inside_the_data_dir(
    live_server: LiveServer, tmp_path: Path
) -> None:
    data_dir = live_server.log.parent
    target = tmp_path / "escaped.jsonl"
    hostile = "../" * 12 + str(target).lstrip("/")
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for name in (hostile, hostile.replace("/", "\\"), "/" + str(target).lstrip("/")):
            r = http.post(
                "/v1/files",
                data={"purpose": "batch"},
                files={"file": (name, b'{"a": 1}\n')},
            )
            assert r.status_code == 200, r.text
            stored = r.json()
            assert stored["filename"] == "escaped.jsonl"  # the base name only, as metadata
            assert (data_dir / "files" / stored["id"]).is_file()
            assert not target.exists()
        secret = (data_dir / "secret_key").read_text().strip()
        for file_id in (
            "..%2Fsecret_key",
            "%2E%2E%2Fsecret_key",
            "..%5Csecret_key",
            "file-..%2F..%2Fsecret_key",
        ):
            for suffix in ("", "/content"):
                r = http.get(f"/v1/files/{file_id}{suffix}")
                assert r.status_code == 404, (file_id, suffix, r.status_code)
                assert secret not in r.text


@pytest.mark.parametrize(
    "model",
    [
        "../../../../etc/passwd",
        "/etc/passwd",
        str(embedded_model_path()),  # a real GGUF on disk, named by path: not a model id
        "ft:../../x:y:z:w",
        "..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_model_ids_are_names_never_paths(live_server: LiveServer, model: str) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
        r = http.get(f"/v1/models/{model.lstrip('/')}")
        assert r.status_code == 404, r.text
        assert "root:" not in r.text
