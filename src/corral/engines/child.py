"""The embedded engine's own process: ``python -m corral.engines.child --port N``.

It runs llama.cpp's server (xllamacpp) with its HTTP listener on loopback at ``N``,
behind a key the parent passes in the environment (never argv, never logged), and does
nothing else: the parent speaks OpenAI HTTP to it. It dies with its parent
(``PR_SET_PDEATHSIG``), so even a SIGKILLed API leaves no engine behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from pydantic import BaseModel

from corral.core.config import EngineSettings
from corral.core.process import set_parent_death_signal

ENV_KEY = "CORRAL_ENGINE_CHILD_KEY"
ENV_SPEC = "CORRAL_ENGINE_CHILD_SPEC"


class ChildSpec(BaseModel):
    """What the child loads; travels as JSON in ``ENV_SPEC``."""

    model_path: Path
    settings: EngineSettings
    adapters: tuple[Path, ...] = ()
    parent_pid: int


def child_env(spec: ChildSpec, key: str) -> dict[str, str]:
    return {ENV_SPEC: spec.model_dump_json(), ENV_KEY: key}


def serve(spec: ChildSpec, key: str, port: int) -> None:
    import xllamacpp as xlc

    from corral.engines.llamacpp import server_params

    params = server_params(spec.model_path, spec.settings, key, spec.adapters)
    params.hostnames = ["127.0.0.1"]
    params.port = port
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
    spec = ChildSpec.model_validate_json(os.environ.pop(ENV_SPEC))
    key = os.environ.pop(ENV_KEY)
    if os.getppid() != spec.parent_pid:  # the parent died before prctl took effect
        sys.exit(1)
    serve(spec, key, args.port)


if __name__ == "__main__":
    main()
