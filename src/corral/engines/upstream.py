"""An engine that is another OpenAI-compatible server (vLLM, llama-server, TGI, SGLang,
Ollama, another corral), or a pool of them.

Streams pass through chunk by chunk. A request is retried on another replica, with
backoff, only when it failed before any byte of its response arrived (a connection
error, or a 502/503/504 status); a stream that already produced output is never
replayed. Usage is taken from the upstream (asked for with include_usage) or, when the
upstream gives none, estimated (about 4 bytes a token for the prompt, a chunk a token
for the output).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import httpx
import orjson

from corral.core.errors import (
    ContextLengthExceededError,
    CorralError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    RateLimitError,
)
from corral.engines.base import Body, EngineInfo
from corral.engines.http1 import Endpoint, StreamClient
from corral.engines.pool import Pool, Replica
from corral.engines.prefix_flights import PrefixFlights
from corral.engines.supervisor import Supervisor

RETRY_STATUSES = frozenset({502, 503, 504})
# How a request to a replica that is going away fails before its first byte. httpcore
# also lets anyio's AttributeError through when the socket closes while it connects
# (seen with a replica killed under load): a transport failure all the same. The
# stream client's failures are OSErrors (ConnectionError) and TimeoutError.
SEND_FAILURES = (httpx.TransportError, TimeoutError, OSError, AttributeError)
BACKOFF_S = (0.05, 0.2, 0.5)


class RetryableError(Exception):
    """Failed before the first byte: safe to send to another replica."""


STREAM_FAILURES = (*SEND_FAILURES, RetryableError)


def upstream_error(status: int, payload: Any) -> CorralError:
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    message = str(err.get("message") or f"upstream answered {status}")
    code = err.get("code")
    param = err.get("param")
    if code == "context_length_exceeded" or err.get("type") == "exceed_context_size_error":
        return ContextLengthExceededError(message, param=param or "messages")
    if status == 429:
        return RateLimitError(message, code="upstream_rate_limited", headers={"retry-after": "1"})
    if 400 <= status < 500:
        return InvalidRequestError(
            message, param=param, code=code if isinstance(code, str) else None
        )
    if status in RETRY_STATUSES:
        return EngineUnavailableError(message, code="upstream_unavailable")
    return EngineError(message, code="upstream_error")


def _affinity_key(body: Body) -> str | None:
    """What keeps a session on one replica (with the pool's ``affinity``): the caller's
    ``prompt_cache_key`` where it gave one (as OpenAI routes by it), else the system
    prompt."""
    key = body.get("prompt_cache_key")
    if isinstance(key, str) and key:
        return "key:" + key
    messages = body.get("messages") or []
    if messages and messages[0].get("role") == "system":
        return str(messages[0].get("content"))
    return None


class UpstreamEngine:
    def __init__(
        self,
        pool: Pool,
        model: str,
        info: EngineInfo,
        timeout_s: float = 600.0,
        supervisors: list[Supervisor] | None = None,
        failure: Callable[[CorralError], CorralError] | None = None,
        flights: PrefixFlights | None = None,
    ) -> None:
        self._pool = pool
        # The embedded engine's: requests that start with one long prefix compute it once.
        self._flights = flights
        self._failure = failure
        self._supervisors = supervisors or []
        self._model = model
        self._timeout = timeout_s
        self._info = info  # decided by the catalog (catalog.registry.engine_info)
        self._http: httpx.AsyncClient | None = None
        # Streams take their own client (engines/http1.py): a chunk is a token on the
        # hottest path corral has; httpx cost about twice aiohttp's CPU per chunk (anyio
        # cancel scopes, h11), and aiohttp ~0.4 ms more than this client before the first
        # token. Health checks and whole answers stay on httpx.
        self._streams: StreamClient | None = None
        self._health: asyncio.Task[None] | None = None
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def pool(self) -> Pool:
        return self._pool

    @property
    def supervisors(self) -> list[Supervisor]:
        return self._supervisors

    async def start(self) -> None:
        for supervisor in self._supervisors:  # launched engines first, then health checks
            await supervisor.start()
        limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, connect=5.0), limits=limits
        )
        # Idle connections close after 1 s: llama.cpp's server polls each one every
        # 10 ms while it is open (a reconnect on loopback is ~0.2 ms). No cookies are
        # kept: what an upstream sets must not ride along on other users' requests.
        self._streams = StreamClient(
            connect_timeout=5.0, read_timeout=self._timeout, keepalive_s=1.0
        )
        await self._pool.check(self._http)
        self._health = asyncio.create_task(self._pool.health_loop(self._http))

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
        if self._http is not None:
            await self._http.aclose()
        if self._streams is not None:
            await self._streams.close()
        for supervisor in self._supervisors:
            await supervisor.stop()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise EngineUnavailableError("upstream engine not started")
        return self._http

    def _stream_client(self) -> StreamClient:
        if self._streams is None:
            raise EngineUnavailableError("upstream engine not started")
        return self._streams

    async def _pick(self, body: Body, tried: set[str], attempt: int) -> Replica | None:
        """The replica for an attempt, after its backoff; None to wait for the next
        backoff (raises on the last attempt). What the twin retry loops of a whole
        answer and a stream share."""
        if attempt:
            await asyncio.sleep(BACKOFF_S[attempt - 1])
        try:
            return self._pool.pick(_affinity_key(body), exclude=tried)
        except EngineUnavailableError:
            if attempt == len(BACKOFF_S):
                raise
            return None

    def _failed(self, replica: Replica, tried: set[str]) -> None:
        """A replica that failed before its first byte: counted, and not tried again."""
        self._pool.failed(replica)
        tried.add(replica.url)

    def _body(self, body: Body) -> Body:
        return {**body, "model": self._model}

    def _endpoint(self, replica: Replica, path: str) -> Endpoint:
        """A replica's endpoint with its request head, made once: parsing the URL and
        merging headers for every stream was measurable on the way to its first token."""
        key = (replica.url, path)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            headers = {**replica.headers, "content-type": "application/json"}
            endpoint = self._endpoints[key] = Endpoint.of(replica.url + path, headers)
        return endpoint

    def _turn(self, body: Body) -> AbstractAsyncContextManager[None]:
        return self._flights.turn(body) if self._flights is not None else nullcontext()

    async def _post(self, path: str, body: Body) -> Body:
        async with self._turn(body):
            return await self._post_now(path, body)

    async def _post_now(self, path: str, body: Body) -> Body:
        tried: set[str] = set()
        for attempt in range(len(BACKOFF_S) + 1):
            replica = await self._pick(body, tried, attempt)
            if replica is None:
                continue
            replica.outstanding += 1
            try:
                response = await self._client().post(
                    replica.url + path,
                    content=orjson.dumps(self._body(body)),
                    headers={**replica.headers, "content-type": "application/json"},
                )
            except SEND_FAILURES as exc:
                self._failed(replica, tried)
                if attempt == len(BACKOFF_S):
                    raise EngineUnavailableError(
                        "upstream unreachable", code="upstream_unavailable"
                    ) from exc
                continue
            finally:
                replica.outstanding -= 1
            if response.status_code in RETRY_STATUSES and attempt < len(BACKOFF_S):
                self._failed(replica, tried)
                continue
            self._pool.succeeded(replica)
            if response.status_code == 200:  # a good answer: no probe needed (pool.check)
                replica.answered_at = time.monotonic()
            data = _loads(response.content)
            if response.status_code != 200 or not isinstance(data, dict):
                raise upstream_error(response.status_code, data)
            return data
        raise EngineUnavailableError("upstream unavailable", code="upstream_unavailable")

    async def _stream(self, path: str, body: Body) -> AsyncIterator[Body]:
        """The upstream's chunks, read from its bytes in this one frame (a chunk is a
        token: a frame that only re-yields costs CPU the engine needs); usage estimated
        at the end when the upstream sent none; what fails said by ``failure``."""
        try:
            payload = self._body(
                {**body, "stream": True, "stream_options": {"include_usage": True}}
            )
            tried: set[str] = set()
            async with self._turn(body):
                for attempt in range(len(BACKOFF_S) + 1):
                    replica = await self._pick(body, tried, attempt)
                    if replica is None:
                        continue
                    replica.outstanding += 1
                    reader = EventReader()
                    try:
                        endpoint = self._endpoint(replica, path)
                        async with self._stream_client().post(endpoint, orjson.dumps(payload)) as r:
                            if r.status in RETRY_STATUSES and attempt < len(BACKOFF_S):
                                raise RetryableError(str(r.status))
                            if r.status != 200:
                                raise upstream_error(r.status, _loads(await r.read()))
                            self._pool.succeeded(replica)
                            while piece := await r.next_bytes():
                                replica.answered_at = time.monotonic()
                                for chunk in reader.feed(piece):
                                    yield chunk
                                if reader.done:
                                    break
                            for chunk in reader.close():
                                yield chunk
                        if not reader.usage_seen:
                            yield _estimated_usage(body, reader.pieces)
                        return
                    except STREAM_FAILURES as exc:
                        if reader.chunks:  # output already went out: never replay
                            raise EngineError(
                                f"upstream stream broke: {exc}", code="upstream_error"
                            ) from exc
                        self._failed(replica, tried)
                        if attempt == len(BACKOFF_S):
                            raise EngineUnavailableError(
                                "upstream unavailable", code="upstream_unavailable"
                            ) from exc
                    finally:
                        replica.outstanding -= 1
        except CorralError as exc:
            said = exc if self._failure is None else self._failure(exc)
            if said is exc:
                raise
            raise said from exc

    async def chat(self, body: Body) -> Body:
        return await self._post("/chat/completions", body)

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/chat/completions", body)

    async def complete(self, body: Body) -> Body:
        return await self._post("/completions", body)

    def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._stream("/completions", body)

    async def embed(self, body: Body) -> Body:
        return await self._post("/embeddings", body)

    async def count_chat_tokens(self, body: Body) -> int:
        # No tokenizer for an arbitrary upstream: a low estimate, so corral only refuses
        # what surely does not fit and the upstream judges the rest itself.
        return len(json.dumps(body.get("messages", ""))) // 4

    async def count_tokens(self, text: str) -> int:
        return len(text.encode()) // 4

    async def slots_busy(self) -> int:
        return sum(r.outstanding for r in self._pool.replicas)

    async def template_tools(self) -> bool:
        # An OpenAI-compatible server says nothing of its template (vLLM parses calls only
        # when started with a tool parser): the catalog's `tool_format: native` says so.
        return False


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"error": {"message": data[:500].decode(errors="replace")}}


class EventReader:
    """The JSON payloads of an event stream, up to ``[DONE]``, from bytes cut anywhere.

    Fed whatever bytes arrived (usually one whole event) rather than line by line: a
    read is a wake-up of the event loop, and this runs once per token. A class, not a
    generator over the socket: one frame fewer per token.
    """

    def __init__(self) -> None:
        self.pending = b""
        self.data: list[bytes] = []
        self.done = False
        self.chunks = 0
        self.pieces = 0  # choices with output: the usage estimate's tokens
        self.usage_seen = False

    def feed(self, piece: bytes) -> list[Body]:
        *lines, self.pending = (self.pending + piece).split(b"\n")
        out: list[Body] = []
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                self.data.append(line[5:].strip())
            elif not line and self.data:  # a blank line ends an event
                payload, self.data = b"\n".join(self.data), []
                if payload == b"[DONE]":
                    self.done = True
                    break
                out.append(self._event(payload))
        return out

    def close(self) -> list[Body]:
        """A last event the stream ended without a blank line (or a newline)."""
        if self.done:
            return []
        line = self.pending.rstrip(b"\r")
        if line.startswith(b"data:"):
            self.data.append(line[5:].strip())
        if self.data and self.data != [b"[DONE]"]:
            return [self._event(b"\n".join(self.data))]
        return []

    def _event(self, payload: bytes) -> Body:
        chunk = _event(payload)
        self.chunks += 1
        self.usage_seen = self.usage_seen or bool(chunk.get("usage"))
        self.pieces += sum(1 for c in chunk.get("choices") or () if _has_output(c))
        return chunk


def _event(payload: bytes) -> Body:
    chunk = orjson.loads(payload)
    if "error" in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {}
        invalid = err.get("type") == "invalid_request_error"
        raise upstream_error(400 if invalid else 500, chunk)
    result: Body = chunk
    return result


def _estimated_usage(body: Body, pieces: int) -> Body:
    """For an upstream that sent no usage: about 4 bytes a prompt token, a chunk with
    output a token."""
    prompt = len(json.dumps(body.get("messages", body.get("prompt", "")))) // 4
    usage = {"prompt_tokens": prompt, "completion_tokens": pieces, "estimated": True}
    return {"choices": [], "usage": {**usage, "total_tokens": prompt + pieces}}


def _has_output(choice: Body) -> bool:
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("tool_calls") or choice.get("text"))


__all__ = ["Replica", "UpstreamEngine"]
