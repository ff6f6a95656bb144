"""The embedded llama.cpp engine, on xllamacpp (llama.cpp's own server loop in-process).

Each request runs on a worker thread because xllamacpp's handlers block until the
request ends; stream chunks cross to the event loop with ``call_soon_threadsafe`` and
the chunk callback returns True once the consumer is gone, which stops the generation.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from corral.core.config import EngineSettings
from corral.core.errors import (
    ContextLengthExceededError,
    CorralError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
)
from corral.engines.base import ADAPTER_KEY, Body, EngineInfo
from corral.engines.params import NO_ROPE_SCALING, RopeScaling, server_params

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


@dataclass
class _End:
    result: Any = None
    exc: BaseException | None = None


def engine_error(payload: Any) -> CorralError:
    """Map llama.cpp's error object to a typed corral error."""
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    message = str(err.get("message", "engine error"))
    kind = err.get("type")
    status = err.get("code")
    if kind == "exceed_context_size_error":
        return ContextLengthExceededError(message, param="messages")
    if status == 400 or kind == "invalid_request_error":
        return InvalidRequestError(message)
    if status == 503 or kind == "unavailable_error":
        return EngineUnavailableError(message)
    return EngineError(message)


def select_lora(body: Body, adapters: tuple[Path, ...]) -> Body:
    """``ADAPTER_KEY`` (set by corral, never by a client) → llama.cpp's per-request
    ``lora`` selection: the named adapter at scale 1, every other one at 0."""
    if not adapters:
        body.pop(ADAPTER_KEY, None)
        return body
    body = dict(body)
    wanted = body.pop(ADAPTER_KEY, None)
    if wanted is not None and wanted not in {str(a) for a in adapters}:
        raise EngineUnavailableError(
            "The fine-tuned model is being loaded; retry shortly.",
            code="model_loading",
            headers={"retry-after": "1"},
        )
    body["lora"] = [
        {"id": i, "scale": 1.0 if str(a) == wanted else 0.0} for i, a in enumerate(adapters)
    ]
    return body


class LlamaCppEngine:
    """One GGUF model served by llama.cpp with continuous batching over ``n_parallel`` slots."""

    def __init__(
        self,
        model_path: Path,
        settings: EngineSettings,
        info: EngineInfo,
        adapters: tuple[Path, ...] = (),
        rope: RopeScaling = NO_ROPE_SCALING,
    ) -> None:
        self._path = model_path
        self._rope = rope
        self._info = info  # decided by the catalog (catalog.registry.engine_info)
        # LoRA adapters loaded beside the base at scale 0; a request picks one (see below).
        self.adapters = adapters
        self._settings = settings
        self._pool = ThreadPoolExecutor(settings.max_workers, thread_name_prefix="llamacpp")
        self._server: Any = None
        # llama.cpp's own HTTP listener is always on; a random key keeps it closed to
        # everyone but corral (which uses it for tokenization only).
        self._listener_key = secrets.token_urlsafe(32)
        self._http: httpx.AsyncClient | None = None
        self._template_tools: bool | None = None

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def listener_key(self) -> str:
        """The listener's key: for the benchmark's engine-direct baseline only."""
        return self._listener_key

    @property
    def listening_address(self) -> str:
        return str(self._server.listening_address)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.run_in_executor(self._pool, self._load)
        self._http = httpx.AsyncClient(
            base_url=self.listening_address,
            headers={"Authorization": f"Bearer {self._listener_key}"},
            timeout=30.0,
        )
        log.info("engine ready: %s (%s)", self._path.name, self._info.fingerprint)

    def _load(self) -> Any:
        import xllamacpp as xlc

        return xlc.Server(
            server_params(self._path, self._settings, self._listener_key, self.adapters, self._rope)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        server, self._server = self._server, None
        if server is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, _drop, server)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _handler(self, name: str) -> Handler:
        if self._server is None:
            raise EngineUnavailableError("engine not started")
        return getattr(self._server, name)  # type: ignore[no-any-return]

    def _select_adapter(self, body: Body) -> Body:
        return select_lora(body, self.adapters)

    async def _call(self, name: str, body: Body) -> Body:
        handler = self._handler(name)
        body = self._select_adapter(body)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, handler, body)
        except ValueError as exc:  # llama.cpp refused the request (e.g. a bad JSON schema)
            raise InvalidRequestError(str(exc)) from exc
        if not isinstance(result, dict) or "error" in result:
            raise engine_error(result)
        return result

    async def _stream(self, name: str, body: Body) -> AsyncIterator[Body]:
        handler = self._handler(name)
        body = self._select_adapter(body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        gone = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening
                gone.set()

        def on_chunk(chunk: Body) -> bool:
            if gone.is_set():
                return True  # stops the generation in llama.cpp
            put(chunk)
            return False

        def run() -> None:
            try:
                put(_End(result=handler(body, on_chunk)))
            except BaseException as exc:  # surfaced on the event loop
                put(_End(exc=exc))

        loop.run_in_executor(self._pool, run)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if isinstance(item.exc, ValueError):
                        raise InvalidRequestError(str(item.exc)) from item.exc
                    if item.exc is not None:
                        raise EngineError(f"engine failed: {item.exc}") from item.exc
                    if isinstance(item.result, dict) and "error" in item.result:
                        raise engine_error(item.result)
                    return
                if "error" in item:
                    raise engine_error(item)
                yield item
        finally:
            gone.set()

    async def chat(self, body: Body) -> Body:
        return await self._call("handle_chat_completions", body)

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("handle_chat_completions", {**body, "stream": True})

    async def complete(self, body: Body) -> Body:
        return await self._call("handle_completions", body)

    def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("handle_completions", {**body, "stream": True})

    async def embed(self, body: Body) -> Body:
        return await self._call("handle_embeddings", body)

    def _listener(self) -> Listener:
        if self._http is None:
            raise EngineUnavailableError("engine not started")
        return Listener(self._http)

    async def count_chat_tokens(self, body: Body) -> int:
        return await self._listener().count_chat_tokens(body)

    async def count_tokens(self, text: str) -> int:
        return await self._listener().count_tokens(text)

    async def slots_busy(self) -> int:
        return 0 if self._http is None else await self._listener().slots_busy()

    async def template_tools(self) -> bool:
        if self._template_tools is None:
            self._template_tools = await self._listener().template_tools()
        return self._template_tools


class Listener:
    """llama.cpp's own HTTP listener, for what its in-process handlers lack: the chat
    template (``/apply-template``), the tokenizer (``/tokenize``) and slot state."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # its base URL is the listener, with the listener's key

    async def _request(self, method: str, path: str, payload: Body | None = None) -> Any:
        content = None if payload is None else json.dumps(payload)
        try:
            response = await self._http.request(method, path, content=content)
        except httpx.TransportError as exc:  # the engine (process) is gone or restarting
            raise EngineUnavailableError("The model's engine is not answering.") from exc
        data = response.json()
        if response.status_code != 200:
            raise engine_error(data)
        return data

    async def count_chat_tokens(self, body: Body) -> int:
        keys = ("messages", "tools", "tool_choice")
        payload = {k: body[k] for k in keys if k in body}
        templated = await self._request("POST", "/apply-template", payload)
        return await self.count_tokens(str(templated["prompt"]))

    async def count_tokens(self, text: str) -> int:
        payload = {"content": text, "add_special": False}
        data = await self._request("POST", "/tokenize", payload)
        return len(data["tokens"])

    async def slots_busy(self) -> int:
        slots = await self._request("GET", "/slots")
        return sum(1 for slot in slots if slot.get("is_processing"))

    async def template_tools(self) -> bool:
        props = await self._request("GET", "/props")
        caps = props.get("chat_template_caps") or {}
        if isinstance(caps, str):  # this llama.cpp writes the caps as a Python dict's repr
            caps = ast.literal_eval(caps)
        return bool(caps.get("supports_tools") and caps.get("supports_tool_calls"))


def _drop(server: Any) -> None:
    del server
