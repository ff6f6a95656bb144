"""One computation of a long prefix that several requests start with at once.

Agents open sessions with the same instructions and tools. llama.cpp's server gives each
request a slot of its own and shares no cells between busy slots (its prompt cache takes
a slot's prompt only when the slot is reused), so three sessions that start together
each compute the whole prefix: measured on the embedded model with a ~2,400-token
prefix, 12.7, 26.7 and 40.7 s to the first token against 12.6 s alone. Here a request
whose prefix another request is computing waits until that one has ended, then finds
the prefix in the engine (the idle slot, or its prompt cache) and computes only the
rest; the requests that waited go on one at a time, each into the slot the one before
it left. vLLM shares a running request's blocks itself: this is for the embedded engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator

import orjson

from corral.engines.base import Body

# A prefix shorter than this is computed again rather than waited for: ~1,000 tokens,
# a few seconds of prefill on two cores, about what a leader's answer may take.
MIN_CHARS = 4000
# A follower waits at most this long per 1,000 characters of prefix (~250 tokens, ~2 s
# of prefill here) and never more than MAX_WAIT_S: a leader writing a long answer must
# not hold back a request that would have computed its prefix sooner itself.
WAIT_S_PER_1000_CHARS = 2.5
MAX_WAIT_S = 60.0
REMEMBER = 1024  # prefixes known computed (not waited for again), least recent dropped


def prefix_key(body: Body) -> tuple[str, int] | None:
    """The hash and length of a request's leading system/developer messages and its tools,
    or None when it has none or they are short."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    head = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
            break
        head.append(message.get("content"))
    if not head:
        return None
    text = orjson.dumps([head, body.get("tools")])
    if len(text) < MIN_CHARS:
        return None
    return hashlib.sha256(text).hexdigest(), len(text)


class PrefixFlights:
    """Requests with a long prefix in common take turns until it has been computed once."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Event] = {}
        self._computed: OrderedDict[str, None] = OrderedDict()

    async def _waited(self, key: str, size: int) -> bool:
        """Wait for the requests ahead with this prefix, one at a time: released together,
        two would land in different slots and one would compute the prefix again (llama.cpp
        copies no KV out of a busy slot; an idle one is reused whole). Each one ahead is
        waited for at most what computing the prefix would take, all of them at most
        MAX_WAIT_S. False: the bound passed first."""
        loop = asyncio.get_running_loop()
        bound = min(MAX_WAIT_S, size / 1000 * WAIT_S_PER_1000_CHARS)
        last = loop.time() + MAX_WAIT_S
        while (ahead := self._running.get(key)) is not None:
            try:
                async with asyncio.timeout_at(min(last, loop.time() + bound)):
                    await ahead.wait()
            except TimeoutError:
                return False
        return True

    @contextlib.asynccontextmanager
    async def turn(self, body: Body) -> AsyncIterator[None]:
        """Held for the whole request: a follower enters when its leader has ended."""
        found = prefix_key(body)
        if found is None or found[0] in self._computed:
            yield
            return
        key, size = found
        if not await self._waited(key, size):
            yield  # waited long enough: computes what it must, beside the one ahead
            return
        done = self._running[key] = asyncio.Event()
        try:
            yield
            self._computed[key] = None  # a failed leader computed nothing to share
            self._computed.move_to_end(key)
            while len(self._computed) > REMEMBER:
                self._computed.popitem(last=False)
        finally:
            del self._running[key]
            done.set()
