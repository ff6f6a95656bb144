"""Running ``python`` graders: untrusted code, so only inside a sandbox.

The grader runs in the system's Python under bubblewrap (``bwrap``): new user, PID,
network, IPC and UTS namespaces (no network at all, not even the host's loopback), a
filesystem of read-only ``/usr`` and an empty ``/tmp`` (corral's data, keys and database
are not there to read), a cleared environment, CPU-time and address-space limits, a
wall-clock timeout that kills the whole namespace, and bounded output. Where bwrap is
missing or cannot create namespaces, python graders are refused with the reason, never
run unsandboxed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import shutil
from dataclasses import dataclass
from typing import Any

PYTHON = "/usr/bin/python3"
MAX_OUTPUT = 64 * 1024

# Executed by the sandboxed interpreter: the payload arrives on stdin.
RUNNER = r"""
import json, sys
payload = json.loads(sys.stdin.read())
namespace = {"__name__": "grader"}
exec(compile(payload["source"], "<grader>", "exec"), namespace)
grade = namespace.get("grade")
if not callable(grade):
    raise SystemExit("the grader source defines no grade(sample, item) function")
print(json.dumps({"score": float(grade(payload["sample"], payload["item"]))}))
"""


class SandboxError(Exception):
    """The grader failed, ran too long, or printed no score."""


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5
    memory_mib: int = 512
    timeout_s: float = 10.0


def command(bwrap: str) -> list[str]:
    return [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        "--chdir", "/tmp",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin",
        PYTHON, "-I", "-S", "-c", RUNNER,
    ]  # fmt: skip


class PythonSandbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._unavailable: str | None = None
        self._checked = False

    def _preexec(self) -> None:
        cpu, memory = self.limits.cpu_s, self.limits.memory_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT, MAX_OUTPUT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    async def unavailable(self) -> str | None:
        """Why python graders cannot run here (None: they can). Checked once."""
        if not self._checked:
            self._checked = True
            self._unavailable = await self._probe()
        return self._unavailable

    async def _probe(self) -> str | None:
        if shutil.which("bwrap") is None:
            return "bubblewrap (bwrap) is not installed on the server"
        try:
            score = await self._run("def grade(sample, item):\n    return 0.5\n", {}, {})
        except (SandboxError, OSError) as exc:
            return f"bubblewrap cannot create a sandbox here: {exc}"
        return None if score == 0.5 else "the sandbox answered wrongly"

    async def grade(self, source: str, sample: dict[str, Any], item: dict[str, Any]) -> float:
        reason = await self.unavailable()
        if reason is not None:
            raise SandboxError(reason)
        return await self._run(source, sample, item)

    async def _run(self, source: str, sample: dict[str, Any], item: dict[str, Any]) -> float:
        bwrap = shutil.which("bwrap") or "bwrap"
        proc = await asyncio.create_subprocess_exec(
            *command(bwrap),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=self._preexec,
            start_new_session=True,
        )
        payload = json.dumps({"source": source, "sample": sample, "item": item}).encode()
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), self.limits.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # bwrap is the namespace's init: its death ends everything in it
            await proc.wait()
            raise SandboxError(f"the grader ran longer than {self.limits.timeout_s:g}s") from None
        if proc.returncode != 0:
            tail = err[-MAX_OUTPUT:].decode(errors="replace").strip().splitlines()
            raise SandboxError(tail[-1] if tail else f"the grader exited {proc.returncode}")
        try:
            return float(json.loads(out[:MAX_OUTPUT])["score"])
        except (ValueError, KeyError, TypeError):
            raise SandboxError("the grader printed no score") from None
