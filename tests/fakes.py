"""A fake engine for fast tests of the layers above the engine (never the only test)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec
from corral.core.config import EngineSettings
from corral.engines.base import Body, EngineInfo


class FakeEngine:
    """Answers with the last message's words; counts a token per word."""

    def __init__(self, context_window: int = 256, reply: str | None = None) -> None:
        self._info = EngineInfo(
            context_window=context_window,
            fingerprint="fp_fake",
            embeddings=True,
            slots=4,
            max_embedding_tokens=64,
        )
        self.reply = reply
        self.bodies: list[Body] = []
        self.knows_tools = False  # True: a template that renders tools (the native format)

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _text(self, body: Body) -> str:
        self.bodies.append(body)
        if self.reply is not None:
            return self.reply
        if "messages" in body:
            return str(body["messages"][-1]["content"])
        return str(body["prompt"])

    def _usage(self, body: Body, text: str) -> dict[str, Any]:
        prompt = len(str(body.get("messages", body.get("prompt"))).split())
        completion = len(text.split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def chat(self, body: Body) -> Body:
        text = self._text(body)
        return {
            "created": int(time.time()),
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": self._usage(body, text),
        }

    async def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        text = self._text(body)
        yield {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        for word in text.split(" "):
            yield {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {"choices": [], "usage": self._usage(body, text)}

    async def complete(self, body: Body) -> Body:
        text = self._text(body)
        return {
            "created": int(time.time()),
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": self._usage(body, text),
        }

    async def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        text = self._text(body)
        yield {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
        yield {"choices": [], "usage": self._usage(body, text)}

    async def embed(self, body: Body) -> Body:
        inputs = body["input"]
        return {
            "data": [
                {"index": i, "embedding": [float(len(str(x))), 0.5, -1.0]}
                for i, x in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": len(inputs)},
        }

    async def count_chat_tokens(self, body: Body) -> int:
        return sum(len(str(m["content"]).split()) for m in body["messages"])

    async def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def template_tools(self) -> bool:
        return self.knows_tools

    async def slots_busy(self) -> int:
        return 0


def fake_registry(
    engine: FakeEngine | None = None, model_id: str = "fake-model", **spec: Any
) -> ModelRegistry:
    """One fake model; ``spec``: more ModelSpec fields (prices, say)."""
    registry = ModelRegistry()
    spec = ModelSpec(
        id=model_id,
        path=__import__("pathlib").Path("/nonexistent.gguf"),
        owned_by="test",
        description="fake",
        **spec,
    )
    registry.add(spec, engine or FakeEngine())
    return registry


def migrated(settings: Any) -> Any:
    """Settings whose database is migrated (ASGITransport runs no lifespan)."""
    from corral.storage.db import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    return settings


def local_info(settings: EngineSettings, path: Path | None = None) -> EngineInfo:
    """The EngineInfo the catalog gives a local GGUF's engine (the embedded model's)."""
    from corral.catalog.registry import engine_info
    from corral.catalog.schema import embedded_model_path

    path = path or embedded_model_path()
    spec = ModelSpec(id=path.stem, path=path, owned_by="test", description="local")
    return engine_info(spec, settings)


def http_scope(path: str = "/v1/chat/completions") -> dict[str, Any]:
    """An ASGI scope of a JSON POST to ``path``, for tests that drive the app's ASGI
    callable directly (to play a slow or vanishing client)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }


class FakeUpstream:
    """An OpenAI-compatible server on loopback that answers ``/v1/models`` (the pools'
    health probe) and a chat completion; it can stop and start again on its port."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeUpstream:
        from aiohttp import web

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": "up", "object": "model"}]})

        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            message = {"role": "assistant", "content": "up"}
            return web.json_response(
                {
                    "id": "chatcmpl-up",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
