"""A test catalog of small local models, with dates relative to a given day."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path


def test_catalog(folder: Path, today: date, gguf: Path | None = None) -> Path:
    """Families `tiny-a` (an old deprecated snapshot, a shut-down one, the current one)
    and `tiny-b`; every snapshot is the same local GGUF (the embedded model when given).

    `tiny-a-old` is deprecated and shuts down in 100 days; `tiny-a-gone` was shut down
    yesterday; `tiny-a-new` is the current stable one; `tiny-a-next` is a preview.
    """
    if gguf is None:
        gguf = folder / "tiny.gguf"
        gguf.write_bytes(b"GGUF" + b"\0" * 64)
    d = lambda days: (today + timedelta(days=days)).isoformat()  # noqa: E731
    text = f"""\
version: 1
families:
  - id: tiny-a
    name: Tiny A
    owner: corral-tests
    description: "Tiny A <b>test</b> model"
    context_window: 2048
    capabilities: [chat, completions, embeddings]
    pricing: {{input: 0.5, cached_input: 0.25, output: 1.5}}
    latest_alias: tiny-latest
    snapshots:
      - id: tiny-a-gone
        stages: {{active: {d(-400)}, deprecated: {d(-300)}, shutdown: {d(-1)}}}
        replacement: tiny-a-new
        memory_mib: 300
        source: {{path: {gguf}}}
      - id: tiny-a-old
        stages: {{active: {d(-200)}, deprecated: {d(-10)}, shutdown: {d(100)}}}
        replacement: tiny-a
        memory_mib: 300
        source: {{path: {gguf}}}
      - id: tiny-a-new
        stages: {{active: {d(-120)}}}
        memory_mib: 300
        source: {{path: {gguf}}}
      - id: tiny-a-next
        stages: {{preview: {d(-2)}}}
        memory_mib: 300
        source: {{path: {gguf}}}
  - id: tiny-b
    name: Tiny B
    owner: corral-tests
    description: Tiny B test model
    context_window: 2048
    capabilities: [chat, completions, embeddings]
    pricing: {{input: 0.1, output: 0.2}}
    snapshots:
      - id: tiny-b-1
        stages: {{active: {d(-50)}}}
        memory_mib: 300
        source: {{path: {gguf}}}
"""
    path = folder / "test-catalog.yaml"
    path.write_text(text)
    return path
