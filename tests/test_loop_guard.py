"""The test loop's guard (tests/loop_guard.py): a socket closed behind the loop's back
leaves a stale entry; the next socket on that fd number is read all the same."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from tests import loop_guard

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="epoll and /proc")


async def _echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read(100))
    await writer.drain()
    writer.close()


def _stale_fd(loop: asyncio.AbstractEventLoop) -> int:
    """An fd the loop watches whose socket was closed without telling the loop."""
    left, right = socket.socketpair()
    loop.add_reader(left.fileno(), lambda: None)
    fd = left.fileno()
    left.close()  # the kernel drops it from the epoll set; the loop's map keeps it
    right.close()
    return fd


async def test_a_socket_on_a_stale_fd_is_read() -> None:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.SelectorEventLoop):
        pytest.skip("the guard watches the standard selector loop")
    server = await asyncio.start_server(_echo_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.warns(loop_guard.StaleFdWarning, match="still listed"):
            stale = _stale_fd(loop)
            sock = socket.create_connection(("127.0.0.1", port))
            if sock.fileno() != stale:  # the next socket gets the same number
                os.dup2(sock.fileno(), stale)
                sock.close()
                sock = socket.socket(fileno=stale)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.read(100), 5) == b"ping"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
