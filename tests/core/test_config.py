from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from corral.core.config import Settings


def test_env_and_nested(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CORRAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CORRAL_ENGINE__N_PARALLEL", "3")
    monkeypatch.setenv("CORRAL_PORT", "9001")
    s = Settings()
    assert s.data_dir == tmp_path and s.engine.n_parallel == 3 and s.port == 9001


def test_every_field_is_described() -> None:
    def check(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                check(annotation)
            else:
                assert field.description, name

    check(Settings)


def test_default_data_dir_is_outside_the_source_tree() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert repo not in Settings().data_dir.resolve().parents


def test_files_dir_defaults_to_the_data_dir_and_may_be_shared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CORRAL_DATA_DIR", str(tmp_path / "replica"))
    assert Settings().files_dir == tmp_path / "replica" / "files"
    # Replicas on one database read each other's uploads from a shared volume.
    monkeypatch.setenv("CORRAL_FILES__DIR", str(tmp_path / "shared"))
    assert Settings().files_dir == tmp_path / "shared"


def test_a_quantized_kv_cache_without_flash_attention_is_refused_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """llama.cpp would refuse it only when the model loads, long after start."""
    monkeypatch.setenv("CORRAL_ENGINE__KV_CACHE_TYPE", "q8_0")
    monkeypatch.setenv("CORRAL_ENGINE__FLASH_ATTN", "off")
    with pytest.raises(ValueError, match="needs flash attention"):
        Settings()
    monkeypatch.setenv("CORRAL_ENGINE__FLASH_ATTN", "on")
    assert Settings().engine.kv_cache_type == "q8_0"
