"""The upstream stream client against real sockets: a raw asyncio server writes exactly
the bytes each case needs (chunk boundaries, early closes, garbage)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from corral.engines.http1 import (
    HIGH_WATER,
    Endpoint,
    StreamClient,
    UpstreamProtocolError,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


class Server:
    """Counts connections; ``answer``: a handler of its own, or the bytes to answer every
    request of a connection with (the requests are kept)."""

    def __init__(self, answer: Handler | bytes) -> None:
        self.handler = self.keep_answering(answer) if isinstance(answer, bytes) else answer
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.closed = asyncio.Event()  # a connection saw EOF from the client

    def keep_answering(self, answer: bytes) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    self.requests.append(await read_request(reader))
                except asyncio.IncompleteReadError:
                    self.closed.set()
                    return
                writer.write(answer)
                await writer.drain()

        return handle

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Handler | bytes) -> AsyncIterator[tuple[Server, Endpoint]]:
    server = Server(answer)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    endpoint = Endpoint.of(
        f"http://127.0.0.1:{port}/v1/chat/completions", {"authorization": "Bearer k"}
    )
    try:
        yield server, endpoint
    finally:
        listener.close()


def answer_once(answer: bytes, hold_s: float = 0.0) -> Handler:
    """A handler that answers one request with ``answer``, then keeps the connection open
    for ``hold_s`` before closing it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(hold_s)

    return handle


async def read_all(client: StreamClient, endpoint: Endpoint, body: bytes = b"{}") -> bytes:
    async with client.post(endpoint, body) as response:
        assert response.status == 200
        return b"".join([piece async for piece in response.iter_any()])


SSE = chunk(b'data: {"a": 1}\n\n') + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


async def test_request_head_and_body_are_sent_as_configured() -> None:
    async with serving(OK_HEAD + SSE) as (server, endpoint):
        client = StreamClient()
        assert await read_all(client, endpoint, b'{"x": 1}') == (
            b'data: {"a": 1}\n\ndata: [DONE]\n\n'
        )
        await client.close()
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{endpoint.port}" in lines
    assert "authorization: Bearer k" in lines
    assert "Content-Length: 8" in lines
    assert body == b'{"x": 1}'


async def test_chunks_reach_the_reader_before_the_answer_ends() -> None:
    """No buffering: the server sends its second event only after the reader got the
    first, so a client that waited for more would hang here."""
    got_first = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await asyncio.wait_for(got_first.wait(), 5)
        writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        await writer.drain()

    async with serving(handle) as (_, endpoint):
        client = StreamClient()
        pieces = []
        async with client.post(endpoint, b"{}") as response:
            async for piece in response.iter_any():
                pieces.append(piece)
                got_first.set()
        await client.close()
    assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_a_connection_is_kept_alive_then_closed_when_idle() -> None:
    async with serving(OK_HEAD + SSE) as (server, endpoint):
        client = StreamClient(keepalive_s=0.2)
        for _ in range(3):
            await read_all(client, endpoint)
        assert server.connections == 1 and len(server.requests) == 3
        await asyncio.wait_for(server.closed.wait(), 2)  # idle past keepalive_s
        await read_all(client, endpoint)
        assert server.connections == 2
        await client.close()


async def test_a_reader_that_stops_at_done_still_gives_the_connection_back() -> None:
    """The stream reader stops at [DONE]; the chunked body's end arrives just after it
    and is waited for, so the next request finds the connection in the pool."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_HEAD + chunk(b"data: [DONE]\n\n"))
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with serving(handle) as (server, endpoint):
        client = StreamClient()
        for _ in range(3):
            async with client.post(endpoint, b"{}") as response:
                assert await anext(response.iter_any()) == b"data: [DONE]\n\n"
        await client.close()
    assert server.connections == 1


async def test_an_answer_that_does_not_end_after_its_reader_left_is_closed() -> None:
    never_ends = OK_HEAD + chunk(b"data: [DONE]\n\n")
    async with serving(never_ends) as (server, endpoint):
        client = StreamClient()
        loop = asyncio.get_running_loop()
        for _ in range(2):
            started = loop.time()
            async with client.post(endpoint, b"{}") as response:
                assert await anext(response.iter_any()) == b"data: [DONE]\n\n"
            assert loop.time() - started < 1
        await client.close()
    assert server.connections == 2


async def test_a_kept_alive_connection_the_upstream_closed_is_replaced() -> None:
    """The upstream closes each connection after one answer without saying so: the
    client finds its pooled connection dead and sends again on a new one."""

    # Closes after its one answer, no `connection: close`: the client pooled it.
    async with serving(answer_once(OK_HEAD + SSE)) as (server, endpoint):
        client = StreamClient()
        await read_all(client, endpoint)
        await asyncio.sleep(0.05)  # the close reached the client
        await read_all(client, endpoint)
        await client.close()
    assert server.connections == 2


async def test_a_request_the_upstream_dropped_unanswered_on_a_reused_connection_is_resent() -> None:
    """The race the pool cannot see coming: the upstream takes the request on a
    kept-alive connection and closes it without a byte of answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + SSE)
        await writer.drain()
        if server.connections == 1:
            await read_request(reader)  # then closes unanswered

    async with serving(handle) as (server, endpoint):
        client = StreamClient()
        await read_all(client, endpoint)
        assert await read_all(client, endpoint) == b'data: {"a": 1}\n\ndata: [DONE]\n\n'
        await client.close()
    assert server.connections == 2


async def test_error_answers_are_read_whole() -> None:
    error = b'{"error": {"message": "no"}}'
    answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s" % (len(error), error)
    async with serving(answer) as (_, endpoint):
        client = StreamClient()
        async with client.post(endpoint, b"{}") as response:
            assert response.status == 400
            assert await response.read() == error
        await client.close()


async def test_a_body_that_ends_with_the_connection_is_complete() -> None:
    async with serving(
        answer_once(b"HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\nupstream down")
    ) as (_, endpoint):
        client = StreamClient()
        async with client.post(endpoint, b"{}") as response:
            assert response.status == 502
            assert await response.read() == b"upstream down"
        await client.close()


async def test_a_stream_cut_short_raises_a_connection_error() -> None:
    async with serving(answer_once(OK_HEAD + chunk(b"data: 1\n\n"))) as (_, endpoint):
        client = StreamClient()
        pieces = []
        with pytest.raises(ConnectionError):
            async with client.post(endpoint, b"{}") as response:
                async for piece in response.iter_any():
                    pieces.append(piece)
        await client.close()
    assert pieces == [b"data: 1\n\n"]


async def test_garbage_is_a_protocol_error() -> None:
    async with serving(answer_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", hold_s=1)) as (_, endpoint):
        client = StreamClient()
        with pytest.raises(UpstreamProtocolError):
            async with client.post(endpoint, b"{}"):
                pass
        await client.close()


async def test_silence_past_the_read_timeout_raises() -> None:
    async with serving(answer_once(OK_HEAD + chunk(b"data: 1\n\n"), hold_s=5)) as (_, endpoint):
        client = StreamClient(read_timeout=0.2)
        loop = asyncio.get_running_loop()
        async with client.post(endpoint, b"{}") as response:
            pieces = response.iter_any()
            assert await anext(pieces) == b"data: 1\n\n"
            started = loop.time()
            with pytest.raises(TimeoutError):
                await anext(pieces)
            assert 0.15 < loop.time() - started < 2
        await client.close()


async def test_a_refused_connection_is_an_os_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    client = StreamClient()
    with pytest.raises(OSError):
        async with client.post(Endpoint.of(f"http://127.0.0.1:{port}/x", {}), b"{}"):
            pass


async def test_a_reader_that_falls_behind_pauses_the_socket_and_loses_nothing() -> None:
    blob = bytes(range(256)) * (HIGH_WATER // 64)  # 4x the high-water mark
    pieces = [blob[i : i + 4096] for i in range(0, len(blob), 4096)]

    async with serving(answer_once(OK_HEAD + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")) as (
        _,
        endpoint,
    ):
        client = StreamClient()
        async with client.post(endpoint, b"{}") as response:
            await asyncio.sleep(0.2)  # everything the socket allows arrives meanwhile
            connection = response._connection
            assert connection._paused and connection._buffered > HIGH_WATER
            assert b"".join([p async for p in response.iter_any()]) == blob
        await client.close()


def test_endpoints_refuse_line_breaks_and_other_schemes() -> None:
    with pytest.raises(ValueError):
        Endpoint.of("http://h/x", {"authorization": "Bearer a\r\nx-evil: 1"})
    with pytest.raises(ValueError):
        Endpoint.of("ftp://h/x", {})
    endpoint = Endpoint.of("https://example.com/v1/x?y=1", {})
    assert endpoint.port == 443 and endpoint.scheme == "https"
    assert endpoint.request(b"ab").startswith(b"POST /v1/x?y=1 HTTP/1.1\r\nHost: example.com\r\n")
    assert endpoint.request(b"ab").endswith(b"Content-Length: 2\r\n\r\nab")


async def test_a_paused_answer_left_unread_is_read_to_its_end_and_its_connection_reused() -> None:
    blob = b"x" * (4 * HIGH_WATER)

    answer = OK_HEAD + chunk(b"data: [DONE]\n\n") + chunk(blob) + b"0\r\n\r\n"
    async with serving(answer) as (server, endpoint):
        client = StreamClient()
        for _ in range(2):
            async with client.post(endpoint, b"{}") as response:
                await asyncio.sleep(0.2)  # the socket pauses behind the unread blob
                assert response._connection._paused
        await client.close()
    assert server.connections == 1


async def test_a_pooled_connection_that_spoke_unasked_is_not_reused() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_HEAD + SSE)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(OK_HEAD + SSE)  # an answer to nothing
            await writer.drain()

    async with serving(handle) as (server, endpoint):
        client = StreamClient()
        await read_all(client, endpoint)
        await asyncio.sleep(0.2)
        assert await read_all(client, endpoint) == b'data: {"a": 1}\n\ndata: [DONE]\n\n'
        await client.close()
    assert server.connections == 2


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_upstreams_are_verified(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    server = Server(OK_HEAD + SSE)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=server_side)
    port = listener.sockets[0].getsockname()[1]
    endpoint = Endpoint.of(f"https://127.0.0.1:{port}/v1/chat/completions", {})
    try:
        trusting = StreamClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            assert await read_all(trusting, endpoint) == b'data: {"a": 1}\n\ndata: [DONE]\n\n'
        await trusting.close()
        assert server.connections == 1  # kept alive over TLS too
        with pytest.raises(ssl.SSLCertVerificationError):
            await read_all(StreamClient(), endpoint)  # the system's CAs do not know it
    finally:
        listener.close()
