"""The embedded llama.cpp engine in its own supervised child process.

The child (``corral.engines.child``) is llama.cpp's server on a loopback port behind a
random key; this engine is the HTTP path every upstream takes (``UpstreamEngine`` over a
pool of one, its ``Supervisor`` restarting the child with backoff) plus what only
llama.cpp offers: exact token counts from its template and tokenizer, slot state, and
per-request LoRA selection. A crash of llama.cpp fails the requests it was serving (an
error event mid-stream), answers 503 while the child restarts, and never touches the API.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import httpx

from corral.core.config import EngineSettings
from corral.core.errors import CorralError, EngineError, EngineUnavailableError
from corral.engines import saved_prompts
from corral.engines.base import Body, EngineInfo
from corral.engines.child import child_env
from corral.engines.llamacpp import Listener, select_lora
from corral.engines.params import NO_ROPE_SCALING, PlainSettings, RopeScaling
from corral.engines.pool import Pool, PoolSettings, Replica
from corral.engines.prefix_flights import PrefixFlights
from corral.engines.supervisor import Supervisor
from corral.engines.upstream import SEND_FAILURES, UpstreamEngine

log = logging.getLogger(__name__)

T = TypeVar("T")

# llama.cpp queues requests past its slots itself, as the inline engine does; the API's
# admission bound (limits.max_in_flight) is the real cap.
MAX_OUTSTANDING = 4096
START_TIMEOUT_S = 300.0


def _restarting() -> EngineUnavailableError:
    return EngineUnavailableError(
        "The model's engine is restarting; retry shortly.",
        code="engine_restarting",
        headers={"retry-after": "2"},
    )


def _failure(exc: CorralError) -> CorralError:
    """What a stream's failure means when the upstream is corral's own child."""
    if isinstance(exc, EngineUnavailableError) and exc.code == "upstream_unavailable":
        return _restarting()
    if isinstance(exc, EngineError) and isinstance(exc.__cause__, SEND_FAILURES):
        return EngineError(  # the child died mid-stream
            "The model's engine stopped during this response; it is restarting.",
            code="engine_crashed",
        )
    return exc


class LlamaCppProcessEngine:
    """One GGUF model served by a llama.cpp child process; the Engine of ``LlamaCppEngine``."""

    def __init__(
        self,
        model_path: Path,
        settings: EngineSettings,
        info: EngineInfo,
        log_dir: Path,
        adapters: tuple[Path, ...] = (),
        rope: RopeScaling = NO_ROPE_SCALING,
        saved: Path | None = None,
    ) -> None:
        """``saved``: the folder this configuration's slots are saved to when it closes
        and restored from when it starts (``saved_prompts``); None: nothing saved."""
        self._path = model_path
        self._settings = settings
        self.adapters = adapters
        self._saved = saved if settings.saved_prompts_mib > 0 else None
        child = PlainSettings.of(settings)
        if self._saved is not None:
            self._saved.mkdir(parents=True, exist_ok=True)
            child = replace(child, slot_save_path=f"{self._saved}/")
        key = secrets.token_urlsafe(32)
        self.supervisor = Supervisor(
            f"{shlex.quote(sys.executable)} -m corral.engines.child --port {{port}}",
            name=f"engine-{model_path.stem}",
            log_dir=log_dir,
            health_path="/health",
            start_timeout_s=START_TIMEOUT_S,
            env=child_env(model_path, child, adapters, key, settings.max_workers + 4, rope),
        )
        pool = Pool(
            [Replica(self.supervisor.url + "/v1", key)],
            # One replica: a refused connection marks it down at once, a slow health check
            # must repeat first; it is re-admitted as soon as the restarted child answers.
            PoolSettings(
                eject_after=2,
                eject_for_s=1.0,
                health_interval_s=0.5,
                max_concurrent=MAX_OUTSTANDING,
            ),
        )
        self._upstream = UpstreamEngine(
            pool,
            "corral-embedded",
            info,
            supervisors=[self.supervisor],
            failure=_failure,
            flights=PrefixFlights(),
        )
        self._http = httpx.AsyncClient(
            base_url=self.supervisor.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )
        self._listener = Listener(self._http)
        self._template_tools: bool | None = None  # the model's: the same after a restart

    @property
    def info(self) -> EngineInfo:
        return self._upstream.info

    @property
    def pool(self) -> Pool:
        return self._upstream.pool

    @property
    def supervisors(self) -> list[Supervisor]:
        return [self.supervisor]

    @property
    def pid(self) -> int | None:
        return self.supervisor.pid

    async def start(self) -> None:
        await self._upstream.start()
        if self._saved is not None:
            await saved_prompts.restore(self._http, self._saved, self._settings.n_parallel)
        log.info("engine process ready: %s (pid %s)", self._path.name, self.pid)

    async def close(self) -> None:
        if self._saved is not None and self.pid is not None:
            limit = self._settings.saved_prompts_mib << 20
            await saved_prompts.save(self._http, self._saved, self._settings.n_parallel, limit)
        await self._upstream.close()
        await self._http.aclose()

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except EngineUnavailableError as exc:
            if exc.code == "upstream_unavailable":
                raise _restarting() from exc
            raise

    def _body(self, body: Body) -> Body:
        return select_lora(dict(body), self.adapters)

    async def chat(self, body: Body) -> Body:
        return await self._guard(self._upstream.chat(self._body(body)))

    def chat_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._upstream.chat_stream(self._body(body))

    async def complete(self, body: Body) -> Body:
        return await self._guard(self._upstream.complete(self._body(body)))

    def complete_stream(self, body: Body) -> AsyncIterator[Body]:
        return self._upstream.complete_stream(self._body(body))

    async def embed(self, body: Body) -> Body:
        return await self._guard(self._upstream.embed(body))

    async def count_chat_tokens(self, body: Body) -> int:
        return await self._listener.count_chat_tokens(body)

    async def count_tokens(self, text: str) -> int:
        return await self._listener.count_tokens(text)

    async def template_tools(self) -> bool:
        if self._template_tools is None:
            self._template_tools = await self._listener.template_tools()
        return self._template_tools

    async def slots_busy(self) -> int:
        try:
            return await self._listener.slots_busy()
        except EngineUnavailableError:
            return 0
