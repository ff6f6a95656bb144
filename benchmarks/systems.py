"""The systems under test, each started alone on the same GGUF and thread count."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from corral.bench.loadgen import Target

HERE = Path(__file__).resolve().parent
PEER_PYTHON = Path.home() / ".cache" / "corral" / "llama-cpp-python" / "bin" / "python"
# Fixed output length for every system: EOS made impossible (<|endoftext|>, <|im_end|>).
NO_EOS = {"logit_bias": {"0": -100, "2": -100}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """The process's resident memory plus its embedded engine child's, if it has one."""
    total = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) / 1024
    return total + sum(rss_mb(child) for child in _engine_children(pid))


def engine_rss_mb(pid: int) -> float:
    """The resident memory of the process's embedded engine child(ren) alone."""
    return sum(rss_mb(child) for child in _engine_children(pid))


def cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the process itself and of its engine child."""
    return _cpu(pid), sum(_cpu(child) for child in _engine_children(pid))


def _cpu(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _engine_children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"corral.engines.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


@dataclass
class Running:
    name: str
    target: Target
    proc: subprocess.Popen[bytes]
    ready_s: float
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process onto ``cpus`` (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def start_corral(env: dict[str, str], log: Path, args: list[str] | None = None) -> Running:
    """The full stack as a user runs it: auth on (a project key) and usage recording on.
    ``args``: more flags for ``corral serve`` (``--catalog``)."""
    key = subprocess.run(
        [sys.executable, "-m", "corral", "keys", "create", "--project", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "serve", "--port", str(port), *(args or [])],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/ready", proc, 120, {})
    target = Target(url + "/v1", "smollm2-135m-instruct", key, extra={"ignore_eos": True, **NO_EOS})
    return Running("corral", target, proc, time.perf_counter() - t0)


def start_corral_isolated(env: dict[str, str], log: Path, isolation: str) -> Running:
    """corral with the embedded engine run the other way (`engine.isolation`): the
    price of the process hop, or of running llama.cpp inside the API."""
    data = Path(env["CORRAL_DATA_DIR"]).with_name(f"data-{isolation}")
    running = start_corral(
        {**env, "CORRAL_DATA_DIR": str(data), "CORRAL_ENGINE__ISOLATION": isolation}, log
    )
    running.name = f"corral, {isolation} engine"
    return running


def _start_keyed(
    args: list[str], env: dict[str, str] | None, log: Path, ready_path: str, timeout: float
) -> tuple[subprocess.Popen[bytes], dict[str, str], float]:
    """A server of ours that prints ``{"url", "key"}`` first: started and waited for."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=log.open("wb")
    )
    assert proc.stdout is not None
    info: dict[str, str] = json.loads(proc.stdout.readline())
    _wait(info["url"] + ready_path, proc, timeout, {"Authorization": f"Bearer {info['key']}"})
    return proc, info, time.perf_counter() - t0


def start_engine_direct(env: dict[str, str], log: Path) -> Running:
    proc, info, ready = _start_keyed([str(HERE / "engine_direct.py")], env, log, "/health", 120)
    target = Target(
        info["url"] + "/v1",
        "smollm2-135m-instruct",
        info["key"],
        extra={"ignore_eos": True, **NO_EOS},
    )
    return Running("engine direct", target, proc, ready)


def start_llama_cpp_python(gguf: Path, threads: int, n_ctx: int, log: Path) -> Running | None:
    if not PEER_PYTHON.exists():
        return None
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(PEER_PYTHON),
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--n_threads",
            str(threads),
            "--n_ctx",
            str(n_ctx),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        env={**os.environ},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v1/models", proc, 120, {})
    target = Target(url + "/v1", "smollm2-135m-instruct", extra=dict(NO_EOS))
    return Running("llama-cpp-python", target, proc, time.perf_counter() - t0)


def start_noop_upstream(log: Path) -> Running:
    """The no-work upstream (``noop_upstream.py``), the gateway's TTFT reference."""
    args = [str(HERE / "noop_upstream.py"), str(free_port())]
    proc, info, ready = _start_keyed(args, None, log, "/v1/models", 30)
    return Running(
        "no-work upstream", Target(info["url"] + "/v1", "noop", info["key"]), proc, ready
    )


def start_gateway(
    env: dict[str, str], log: Path, upstream: Running, data: Path, name: str = "gateway"
) -> Running:
    """corral in gateway mode: a catalog snapshot whose source is the upstream's
    listener, full stack (auth, usage) in front of it."""
    catalog = data / f"{name}.yaml"
    catalog.write_text(
        f"""version: 1
families:
  - id: gateway
    name: Gateway
    owner: bench
    description: The benchmark's upstream, behind corral.
    context_window: 8192
    capabilities: [chat, completions]
    pricing: {{input: 0.1, cached_input: 0.05, output: 0.2}}
    snapshots:
      - id: gateway-2025-01-01
        stages: {{active: 2025-01-01}}
        source:
          upstream: {{url: "{upstream.target.base_url}", api_key_env: BENCH_UPSTREAM_KEY}}
"""
    )
    genv = {
        **env,
        "CORRAL_DATA_DIR": str(data / f"{name}-data"),
        "CORRAL_CATALOG": str(catalog),
        "CORRAL_MODEL": "gateway",
        "BENCH_UPSTREAM_KEY": upstream.target.api_key or "",
    }
    running = start_corral(genv, log)
    running.name = "corral gateway"
    running.target = Target(
        running.target.base_url, "gateway", running.target.api_key, dict(upstream.target.extra)
    )
    return running
