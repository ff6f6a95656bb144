"""Frames per streamed token: the async-generator frames between the engine's socket and
the client, for each dialect, read off a live stack.

corral is served in this process (uvicorn, the default process engine, no auth) and
``EventReader.feed`` (where the engine's bytes become chunks, in the frame that reads
the socket) records the stack on one token of each dialect's stream. Every frame on it
that is an async generator's runs once per token; the count is what this prints.

    python benchmarks/frames.py    # writes docs/benchmarks-frames.md; non-zero over the bar
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

from corral.app import create_app
from corral.core.config import Settings
from corral.engines import upstream

ROOT = Path(__file__).resolve().parents[1]
BAR = 8  # issue 29: at most 8 frames from the engine's socket to the client
MODEL = "smollm2-135m-instruct"
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
    "responses": ("/v1/responses", {"input": "Hi", "store": False}),
    "messages": ("/v1/messages", {"messages": [{"role": "user", "content": "Hi"}]}),
    # Stop sequences matched by corral (to name the one found) add their scanner.
    "messages, stop_sequences": (
        "/v1/messages",
        {"messages": [{"role": "user", "content": "Hi"}], "stop_sequences": ["zzz"]},
    ),
}


def generator_frames(frame: FrameType | None) -> list[str]:
    """The async generators on the stack, innermost first."""
    names = []
    while frame is not None:
        if frame.f_code.co_flags & inspect.CO_ASYNC_GENERATOR:
            names.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name})")
        frame = frame.f_back
    return names


async def main() -> int:
    seen: list[list[str]] = []
    feed = upstream.EventReader.feed

    def recording(self: upstream.EventReader, piece: bytes) -> list[dict[str, Any]]:
        chunks = feed(self, piece)
        if self.chunks == 3:  # a token well into the stream
            seen.append(generator_frames(sys._getframe(1)))
        return chunks

    upstream.EventReader.feed = recording  # type: ignore[method-assign]
    data = Path(tempfile.mkdtemp(prefix="corral-frames-"))
    settings = Settings(data_dir=data)  # no key yet: open mode
    config = uvicorn.Config(create_app(settings), port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, no event)
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    worst = 0
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = [
        "# Frames per streamed token",
        "",
        f"Written by `python benchmarks/frames.py` (part of `make bench`) on {when}: the",
        "async-generator frames on the stack while one token of a stream goes from the",
        f"engine's socket to the client, per dialect (the bar: at most {BAR}). The socket is",
        "read in the first frame listed; Starlette's response loop, a plain coroutine,",
        "sends each frame's bytes.",
        "",
    ]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        for dialect, (path, body) in BODIES.items():
            seen.clear()
            payload = {"model": MODEL, "max_tokens": 8, "stream": True, **body}
            if dialect.startswith("responses"):
                payload["max_output_tokens"] = payload.pop("max_tokens")
            async with http.stream("POST", path, json=payload) as response:
                assert response.status_code == 200, await response.aread()
                await response.aread()
            frames = seen[0] if seen else []
            worst = max(worst, len(frames))
            page += [f"## {dialect}: {len(frames)} frames", ""]
            page += [f"{i}. `{name}`" for i, name in enumerate(frames, 1)] + [""]
    server.should_exit = True
    await task
    text = "\n".join(page)
    (ROOT / "docs" / "benchmarks-frames.md").write_text(text)
    print(text)
    return 0 if worst <= BAR else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
