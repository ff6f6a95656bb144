"""Starting and stopping the training worker process from ``corral serve``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from corral.core.config import Settings

log = logging.getLogger(__name__)


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker reads the same settings: the API's effective values, by environment."""
    env = {**os.environ, "CORRAL_DATA_DIR": str(settings.data_dir)}
    env["CORRAL_DATABASE_URL"] = settings.db_url
    for name, value in settings.fine_tuning.model_dump().items():
        env[f"CORRAL_FINE_TUNING__{name.upper()}"] = str(value)
    env["CORRAL_LOG_LEVEL"] = settings.log_level
    env["CORRAL_LOG_FORMAT"] = settings.log_format
    # torch's OpenMP threads spin at each barrier by default; beside the engine (or any
    # other work on the box) a spinning thread burns the core the thread it waits for
    # needs. Measured, the fine-tuning e2e job with one core busy elsewhere: 92 s
    # spinning, 58 s passive (49 s / 55 s on an idle box). An operator's own value wins.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _preexec() -> None:
    from corral.core.process import set_parent_death_signal

    set_parent_death_signal()


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "worker"],
        env=worker_env(settings),
        preexec_fn=_preexec if sys.platform == "linux" else None,
    )
    log.info("training worker started (pid %d)", proc.pid)
    return proc


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM: the worker puts a running job back in the queue; SIGKILL past ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("training worker did not stop in %.0fs; killing it", timeout)
            proc.kill()
            proc.wait()
