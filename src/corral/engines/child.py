"""The embedded engine's own process: ``python -m corral.engines.child --port N``.

It runs llama.cpp's server (xllamacpp) with its HTTP listener on loopback at ``N``,
behind a key the parent passes in the environment (never argv, never logged), and does
nothing else: the parent speaks OpenAI HTTP to it. It dies with its parent
(``PR_SET_PDEATHSIG``), so even a SIGKILLed API leaves no engine behind. It imports
nothing but the standard library, xllamacpp and ``corral.engines.params``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from corral.core.process import set_parent_death_signal
from corral.engines.params import (
    NO_ROPE_SCALING,
    LlamaSettings,
    PlainSettings,
    RopeScaling,
    server_params,
)

ENV_KEY = "CORRAL_ENGINE_CHILD_KEY"
ENV_SPEC = "CORRAL_ENGINE_CHILD_SPEC"


def child_env(
    model_path: Path,
    settings: LlamaSettings,
    adapters: tuple[Path, ...],
    key: str,
    http_threads: int,
    rope: RopeScaling = NO_ROPE_SCALING,
) -> dict[str, str]:
    """The child's whole configuration, for its environment."""
    spec = {
        "model_path": str(model_path),
        "settings": asdict(PlainSettings.of(settings)),
        "adapters": [str(a) for a in adapters],
        "rope": asdict(rope),
        "parent_pid": os.getpid(),
        "http_threads": http_threads,
    }
    return {ENV_SPEC: json.dumps(spec), ENV_KEY: key}


def serve(spec: dict[str, Any], key: str, port: int) -> None:
    import xllamacpp as xlc

    settings = PlainSettings(**spec["settings"])
    adapters = tuple(Path(a) for a in spec["adapters"])
    rope = RopeScaling(**spec["rope"])
    params = server_params(Path(spec["model_path"]), settings, key, adapters, rope)
    params.hostnames = ["127.0.0.1"]
    params.port = port
    # A stream holds one of the listener's threads until it ends, and llama.cpp's default
    # (n_parallel + 2) would queue the rest, health checks included, behind them.
    params.n_threads_http = spec["http_threads"]
    server = xlc.Server(params)
    print(f"engine listening on {server.listening_address}", flush=True)
    while True:  # the listener's threads serve; this one waits for a signal
        signal.pause()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="corral.engines.child")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # SIGKILL: llama.cpp keeps nothing worth saving, and it must not linger.
    set_parent_death_signal(signal.SIGKILL)
    spec = json.loads(os.environ.pop(ENV_SPEC))
    key = os.environ.pop(ENV_KEY)
    if os.getppid() != spec["parent_pid"]:  # the parent died before prctl took effect
        sys.exit(1)
    serve(spec, key, args.port)


if __name__ == "__main__":
    main()
