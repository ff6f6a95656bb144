"""Launch an engine process (e.g. `vllm serve … --port {port}`), wait until it answers,
restart it with backoff when it dies, stop it on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import socket
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# A process that ran this long before it died starts the backoff over: a crash a day
# should not wait as long as the fifth crash in a minute.
STABLE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Supervisor:
    def __init__(
        self,
        command: str,
        *,
        name: str,
        log_dir: Path,
        health_path: str = "/v1/models",
        api_key: str | None = None,
        start_timeout_s: float = 900.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if "{port}" not in command:
            raise ValueError(f"launch command for {name} must contain {{port}}")
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = "stopped"
        self.restarts = 0
        self._streak = 0  # restarts since the last stable run: the backoff index
        self._started_at = 0.0
        # $VARS are expanded (keys stay in the environment, not in the catalog); no shell.
        self._argv = shlex.split(os.path.expandvars(command.replace("{port}", str(self.port))))
        self._log_path = log_dir / f"{name}.log"
        self._health = health_path
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = start_timeout_s
        self._env = {**os.environ, **(env or {})}
        self._proc: asyncio.subprocess.Process | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._spawn()
        self._monitor = asyncio.create_task(self._watch())

    async def _spawn(self) -> None:
        self.state = "starting"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=self._env
            )
        self._started_at = time.monotonic()
        await self._wait_healthy()
        self.state = "ready"
        log.info("%s ready on %s (pid %s)", self.name, self.url, self._proc.pid)

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited while starting; see {self._log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(self.url + self._health, headers=self._headers)
                    if r.status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer within {self._timeout:.0f}s")

    async def _watch(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            if time.monotonic() - self._started_at >= STABLE_S:
                self._streak = 0
            delay = BACKOFF_S[min(self._streak, len(BACKOFF_S) - 1)]
            self._streak += 1
            self.restarts += 1
            self.state = "restarting"
            log.warning(
                "%s exited with %s; restart %d in %.0fs", self.name, code, self.restarts, delay
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (RuntimeError, TimeoutError) as exc:
                log.error("%s failed to restart: %s", self.name, exc)

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.state = "stopped"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None
