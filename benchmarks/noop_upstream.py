"""An OpenAI-compatible server that does no work, on a fixed timetable: the upstream
against which the benchmark measures the TTFT corral's gateway adds.

Against the engine, TTFT moves by ~15 ms between requests of the same size (threads
sharing two cores with everything else), so a 2-ms difference of p50s would need
thousands of requests. Here every answer keeps the same timetable, which llama.cpp's
server follows: headers at once, a role chunk after PREFILL_S, the first token
FIRST_TOKEN_S later, then one every ITL_S. What the gateway adds is all that differs.

Each chunk is due at a fixed time from the request's start, not a sleep after the last
write: a sleep-after-write pace slipped by every late wake-up, and on two cores shared
with a gateway and its client the wake-ups are late, so the upstream itself ran slower
behind the gateway than alone (8 streams of 64 tokens: 711 vs 689 ms a batch, of which
the first tokens were only 3-5 ms apart). A GPU server's steps keep their time however
busy the proxy's CPU is; so does this one now (664 vs 658 ms).

Prints ``{"url": ..., "key": ...}`` on its first line; requests need the key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from typing import Any

import orjson
from aiohttp import web

PREFILL_S = 0.005
FIRST_TOKEN_S = 0.010
ITL_S = 0.010


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-noop",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))


async def _stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    model, tokens = str(body.get("model")), int(body.get("max_tokens") or 16)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    start = asyncio.get_running_loop().time()
    await _until(start + PREFILL_S)
    await response.write(_chunk(model, {"role": "assistant", "content": None}))
    for i in range(tokens):
        await _until(start + PREFILL_S + FIRST_TOKEN_S + i * ITL_S)
        await response.write(_chunk(model, {"content": " word"}))
    await response.write(_chunk(model, {}, "length"))
    usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
    final = {"id": "chatcmpl-noop", "object": "chat.completion.chunk", "model": model}
    await response.write(b"data: " + orjson.dumps({**final, "choices": [], "usage": usage}))
    await response.write(b"\n\ndata: [DONE]\n\n")
    return response


def app(key: str) -> web.Application:
    def authorized(request: web.Request) -> None:
        if request.headers.get("authorization") != f"Bearer {key}":
            raise web.HTTPUnauthorized()

    async def chat(request: web.Request) -> web.StreamResponse:
        authorized(request)
        body = await request.json()
        if body.get("stream"):
            return await _stream(request, body)
        n = int(body.get("max_tokens") or 16)
        message = {"role": "assistant", "content": " word" * n}
        return web.json_response(
            {
                "id": "chatcmpl-noop",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n},
            }
        )

    async def completions(request: web.Request) -> web.Response:  # corral's /ready probe
        authorized(request)
        body = await request.json()
        choice = {"index": 0, "text": " word", "finish_reason": "length"}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return web.json_response(
            {
                "object": "text_completion",
                "model": body.get("model"),
                "choices": [choice],
                "usage": usage,
            }
        )

    async def models(request: web.Request) -> web.Response:
        authorized(request)
        return web.json_response({"object": "list", "data": [{"id": "noop", "object": "model"}]})

    application = web.Application()
    application.router.add_post("/v1/chat/completions", chat)
    application.router.add_post("/v1/completions", completions)
    application.router.add_get("/v1/models", models)
    return application


def main() -> None:
    port, key = int(sys.argv[1]), secrets.token_urlsafe(16)
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "key": key}), flush=True)
    web.run_app(app(key), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
