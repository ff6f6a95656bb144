"""One source of EngineInfo: the catalog decides it, the registry and the engine it
builds share it, and every fingerprint is made one way."""

from __future__ import annotations

from pathlib import Path

from corral.app import default_registry
from corral.catalog.adapters import AdapterEngine
from corral.catalog.registry import engine_info
from corral.catalog.schema import ModelSpec, UpstreamSource
from corral.core.config import EngineSettings, Settings
from tests.fakes import FakeEngine

SETTINGS = EngineSettings(n_ctx=4096, n_parallel=3)


def _spec(**fields: object) -> ModelSpec:
    base: dict[str, object] = {"id": "m", "path": Path("/nonexistent.gguf")}
    return ModelSpec(owned_by="t", description="", **{**base, **fields})  # type: ignore[arg-type]


def test_local_window_is_the_smaller_and_fingerprint_names_the_weights(tmp_path: Path) -> None:
    assert engine_info(_spec(context_window=2048), SETTINGS).context_window == 2048
    info = engine_info(_spec(context_window=128_000), SETTINGS)
    assert info.context_window == 4096 and info.slots == 3
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"a")
    before = engine_info(_spec(path=weights), SETTINGS).fingerprint
    assert before == engine_info(_spec(path=weights), SETTINGS).fingerprint
    weights.write_bytes(b"bb")  # other weights: another fingerprint
    assert engine_info(_spec(path=weights), SETTINGS).fingerprint != before


def test_upstream_info_comes_from_the_catalog_not_the_local_engine() -> None:
    up = UpstreamSource(urls=["http://a:8000/v1", "http://b:8000/v1"], max_concurrent=16)
    info = engine_info(_spec(context_window=131_072, upstream=up, source="upstream"), SETTINGS)
    assert info.context_window == 131_072 and info.slots == 32
    other = UpstreamSource(urls=["http://c:8000/v1"], max_concurrent=16)
    assert engine_info(_spec(upstream=other), SETTINGS).fingerprint != info.fingerprint


def test_a_fine_tune_fingerprint_derives_from_its_base() -> None:
    base = FakeEngine()
    a, b = AdapterEngine(base, Path("/a.gguf")), AdapterEngine(base, Path("/b.gguf"))
    assert a.info.fingerprint.startswith("fp_") and a.info.fingerprint != b.info.fingerprint
    assert a.info.context_window == base.info.context_window and not a.info.embeddings


def test_the_engine_built_gets_the_registrys_info(tmp_path: Path) -> None:
    registry = default_registry(Settings(data_dir=tmp_path))
    served = registry.get(registry.catalog.resolve("smollm2-135m-instruct").snapshot.id)  # type: ignore[union-attr]
    engine = registry._factory(served.spec)  # type: ignore[misc]  # what a load would build
    assert engine.info == served.engine.info
