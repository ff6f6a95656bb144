"""A lean HTTP/1.1 client for the upstream's streamed answers.

aiohttp did this before. From its ``post()`` to the request's bytes on the socket took
~0.4 ms of the ~1.9 ms the gateway added to the first token: it builds a request object
and then writes the body from a task of its own (one more turn of the event loop on
Python 3.11). Here the request head is built once per endpoint and a request is one
``write``; the response is parsed by httptools (llhttp, the parser uvicorn serves with)
as it arrives. It does only what the stream path needs: a POST with a body, keep-alive
with an idle timeout, flow control on the response, timeouts. Whole answers and health
checks stay on httpx.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

HIGH_WATER = 1 << 16  # response bytes buffered before the socket stops being read
MAX_ERROR_BODY = 1 << 20  # what ``read()`` keeps of an answer (error bodies are small)
FINISH_S = 0.05  # how long the end of an answer its reader left may take to arrive


class UpstreamProtocolError(ConnectionError):
    """The upstream's bytes are not HTTP/1.1, or its answer ended early."""


@dataclass(frozen=True)
class Endpoint:
    """Where a POST goes, with its request head made once."""

    scheme: str
    host: str
    port: int
    head: bytes  # the request line and headers, up to the Content-Length value

    @classmethod
    def of(cls, url: str, headers: dict[str, str]) -> Endpoint:
        u = URL(url)
        if u.scheme not in ("http", "https") or not u.host or u.port is None:
            raise ValueError(f"not an http(s) URL: {url!r}")
        host = u.host if u.is_default_port() else f"{u.host}:{u.port}"
        lines = [f"POST {u.raw_path_qs} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        text = "\r\n".join(lines) + "\r\nContent-Length: "
        # Headers come from the operator's configuration; a newline in one (a pasted
        # key, say) would split the request.
        if any(c in value for value in (url, *headers, *headers.values()) for c in "\r\n"):
            raise ValueError("a header or URL of an upstream contains a line break")
        return cls(u.scheme, u.host, u.port, text.encode("latin-1"))

    def request(self, body: bytes) -> bytes:
        return b"%s%d\r\n\r\n%s" % (self.head, len(body), body)


class _Connection(asyncio.Protocol):
    """One connection: feeds httptools and hands body bytes to one reader at a time."""

    def __init__(self, read_timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_timeout = read_timeout  # the longest wait for the upstream's next bytes
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._since = 0.0  # when the current wait began or bytes last came
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte of an answer
        self.lost: BaseException | None = None
        self.framed = False  # a Content-Length or chunked body, not one that ends at EOF
        self.idle: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._since = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.lost = UpstreamProtocolError(f"upstream sent invalid HTTP: {exc}")
            self.abort()
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is None and self.headers_done and not self.framed:
            self.complete = True  # a body that ends where the connection does
        if not self.complete and self.lost is None:
            self.lost = exc or UpstreamProtocolError("upstream closed the connection")
        self.keep_alive = False
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    def send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def finish(self, within: float) -> bool:
        """Read and drop what is left of the answer; False if it does not end in time."""
        try:
            async with asyncio.timeout(within):
                while await self.next_bytes():
                    pass
        except (TimeoutError, ConnectionError):
            return False
        return True

    def reset(self) -> None:
        """Ready for the next request on this connection."""
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.headers_done, self.complete = 0, False, False
        self.received = self.framed = False
        self._chunks, self._buffered = [], 0

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    @property
    def closed(self) -> bool:
        return self.lost is not None or self._transport is None or self._transport.is_closing()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_deadline(self) -> None:
        """The read timeout's one timer: a wait times out when nothing arrived for
        ``read_timeout``; while bytes keep coming the timer moves on instead."""
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return  # nobody waits: the next wait arms it again
        deadline = self._since + self._read_timeout
        if self._loop.time() >= deadline:
            self._waiter.set_exception(TimeoutError("upstream sent nothing in time"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    async def _wait(self) -> None:
        # Not a timer per wait (asyncio.timeout or call_later): this runs once a token,
        # and making and cancelling a timer each time cost more than the rest of it.
        self._since = self._loop.time()
        waiter = self._waiter = self._loop.create_future()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self._read_timeout, self._check_deadline)
        try:
            await waiter
        finally:
            self._waiter = None

    async def headers(self) -> None:
        while not self.headers_done:
            if self.lost is not None:
                raise self.lost
            await self._wait()

    async def next_bytes(self) -> bytes:
        """Body bytes that arrived (waiting for some), or b"" at the answer's end."""
        while not self._chunks:
            if self.complete:
                return b""
            if self.lost is not None:
                raise self.lost
            await self._wait()
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data


class Response:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = connection.status

    async def next_bytes(self) -> bytes:
        """Body bytes that arrived (waiting for some), or b"" at the answer's end: a
        stream's reader loops on this rather than on a generator, a frame fewer a token."""
        return await self._connection.next_bytes()

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self._connection.next_bytes():
            yield data

    async def read(self) -> bytes:
        """The whole answer, up to MAX_ERROR_BODY bytes (the rest is dropped)."""
        parts, size = [], 0
        async for data in self.iter_any():
            if size < MAX_ERROR_BODY:
                parts.append(data)
            size += len(data)
        return b"".join(parts)[:MAX_ERROR_BODY]


class StreamClient:
    """POSTs whose answers are read as they arrive, over kept-alive connections."""

    def __init__(
        self,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        keepalive_s: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive = keepalive_s
        self._idle: dict[Endpoint, list[_Connection]] = {}
        # https upstreams: the system's CAs (SSL_CERT_FILE works) unless given one.
        self._ssl = ssl_context

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        context = None
        if endpoint.scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _, connection = await loop.create_connection(
                lambda: _Connection(self._read_timeout),
                endpoint.host,
                endpoint.port,
                ssl=context,
                server_hostname=endpoint.host if context else None,
            )
        return connection

    def _take_idle(self, endpoint: Endpoint) -> _Connection | None:
        idle = self._idle.get(endpoint)
        while idle:
            connection = idle.pop()
            if connection.idle is not None:
                connection.idle.cancel()
            if not connection.closed and not connection.received:
                return connection
            connection.abort()  # closed, or it sent bytes nobody asked for
        return None

    def _put_back(self, endpoint: Endpoint, connection: _Connection) -> None:
        if connection.closed or not connection.keep_alive:
            connection.abort()
            return
        connection.reset()
        idle = self._idle.setdefault(endpoint, [])
        idle.append(connection)
        connection.idle = asyncio.get_running_loop().call_later(
            self._keepalive, self._expire, endpoint, connection
        )

    def _expire(self, endpoint: Endpoint, connection: _Connection) -> None:
        idle = self._idle.get(endpoint, [])
        if connection in idle:
            idle.remove(connection)
        connection.abort()

    async def _send(self, endpoint: Endpoint, request: bytes) -> _Connection:
        connection = self._take_idle(endpoint)
        if connection is not None:
            try:
                return await self._exchange(connection, request)
            except ConnectionError:
                # The upstream closed a kept-alive connection as we reused it: nothing
                # was answered, so the request goes once more on a new connection.
                if connection.received:
                    raise
        return await self._exchange(await self._connect(endpoint), request)

    async def _exchange(self, connection: _Connection, request: bytes) -> _Connection:
        connection.send(request)
        try:
            await connection.headers()
        except BaseException:
            connection.abort()
            raise
        return connection

    @asynccontextmanager
    async def post(self, endpoint: Endpoint, body: bytes) -> AsyncIterator[Response]:
        connection = await self._send(endpoint, endpoint.request(body))
        try:
            yield Response(connection)
            # A stream's reader stops at [DONE]; the end of the chunked body follows it
            # at once. Waiting for it here, not in the background, puts the connection
            # back before the next request looks for one: a connection that came back
            # late made the next request open another, and an idle connection costs
            # llama.cpp's server a wake-up every 10 ms (it polls each one).
            finished = connection.complete or await connection.finish(FINISH_S)
        except BaseException:
            connection.abort()  # the reader gave up: the upstream stops generating
            raise
        if finished:
            self._put_back(endpoint, connection)
        else:
            connection.abort()

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                if connection.idle is not None:
                    connection.idle.cancel()
                connection.abort()
        self._idle.clear()
