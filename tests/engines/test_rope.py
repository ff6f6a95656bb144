"""RoPE scaling: from the catalog's ``rope_scaling`` to llama.cpp's parameters, and into
the fingerprint (it changes every answer). No model is loaded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import xllamacpp as xlc

from corral.catalog.registry import engine_info
from corral.catalog.schema import CatalogError, load_catalog
from corral.core.config import EMBEDDED_MODEL_ID, EngineSettings
from corral.engines.params import NO_ROPE_SCALING, RopeScaling, server_params

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CATALOG = """\
version: 1
families:
  - id: tiny
    name: Tiny
    owner: test
    description: A tiny model.
    context_window: 32768
    rope_scaling: {type: yarn, factor: 4, original_context: 8192}
    capabilities: [chat]
    pricing: {input: 1.0, output: 2.0}
    snapshots:
      - id: tiny-1
        stages: {active: 2026-01-01}
        source: {path: tiny.gguf}
      - id: tiny-2
        stages: {active: 2026-02-01}
        source: {path: tiny.gguf}
        rope_scaling: {type: linear, factor: 2}
"""


def _catalog(tmp_path: Path, text: str = CATALOG):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_catalog(path, shipped=False, today=lambda: date(2026, 6, 1))


def test_the_family_scales_and_a_snapshot_overrides_it(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    one = catalog.spec(catalog.snapshots["tiny-1"], tmp_path)
    two = catalog.spec(catalog.snapshots["tiny-2"], tmp_path)
    assert one.rope == RopeScaling("yarn", 4.0, 8192)
    assert two.rope == RopeScaling("linear", 2.0, 0)


def test_a_factor_that_does_not_stretch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="factor"):
        _catalog(tmp_path, CATALOG.replace("factor: 4", "factor: 1"))


def test_llama_params_stretch_by_the_factor() -> None:
    settings = EngineSettings(n_ctx=32768)
    p = server_params(Path("m.gguf"), settings, "k", (), RopeScaling("yarn", 4.0, 8192))
    assert p.rope_scaling_type == xlc.llama_rope_scaling_type.LLAMA_ROPE_SCALING_TYPE_YARN
    assert p.rope_freq_scale == pytest.approx(0.25) and p.yarn_orig_ctx == 8192
    plain = server_params(Path("m.gguf"), settings, "k", (), NO_ROPE_SCALING)
    unspecified = xlc.llama_rope_scaling_type.LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED
    assert plain.rope_scaling_type == unspecified and plain.rope_freq_scale == 0.0


def test_the_32k_operator_catalog_stretches_the_embedded_model_with_yarn() -> None:
    catalog = load_catalog(DEPLOY / "smollm2-32k.yaml")
    snap = catalog.target(EMBEDDED_MODEL_ID)
    assert snap is not None
    spec = catalog.spec(snap, Path("/store"))
    assert spec.rope == RopeScaling("yarn", 4.0, 8192)
    assert engine_info(spec, EngineSettings(n_ctx=32768)).context_window == 32768
    assert engine_info(spec, EngineSettings()).context_window == 8192  # n_ctx caps it
    shipped = load_catalog()
    plain = shipped.spec(shipped.snapshots[snap.id], Path("/store"))
    assert plain.rope == NO_ROPE_SCALING and plain.context_window == 8192
    # YaRN changes every answer: the fingerprint says which configuration served one.
    assert (
        engine_info(plain, EngineSettings()).fingerprint
        != engine_info(spec, EngineSettings()).fingerprint
    )
