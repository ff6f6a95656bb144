"""The engine's prompt memory: the RAM cache's bound, and where saved slots live (one
folder per configuration of the KV cells)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from corral.catalog.registry import estimate_mib
from corral.catalog.schema import ModelSpec
from corral.core.config import EngineSettings
from corral.engines.params import PlainSettings, server_params
from corral.engines.saved_prompts import saved_prompts_dir


def test_the_folder_is_named_by_everything_the_cells_depend_on(tmp_path: Path) -> None:
    def folder(fp: str = "fp_model", n_ctx: int = 8192, slots: int = 8, **kw: object) -> Path:
        adapters = kw.get("adapters", ())
        flash, kv = kw.get("flash", "auto"), kw.get("kv", "f16")
        return saved_prompts_dir(tmp_path, fp, n_ctx, slots, adapters, flash, kv)

    base = folder()
    assert base == folder()
    assert base.parent == tmp_path
    others = {
        folder("fp_other_weights"),
        folder(n_ctx=4096),
        folder(slots=4),
        folder(adapters=(Path("a.gguf"),)),
        folder(flash="off"),  # values stored transposed without flash attention
        folder(kv="q8_0"),
    }
    assert base not in others and len(others) == 6


def test_the_prompt_cache_and_the_saved_slots_are_bounded_as_set(tmp_path: Path) -> None:
    """The RAM the prompt cache may fill is llama.cpp's own bound (`cache_ram_mib`), and
    the engine's memory estimate counts it; slots are saved only where the engine says."""
    settings = EngineSettings(cache_ram_mib=300)
    p = server_params(tmp_path / "m.gguf", settings, "k", ())
    assert p.cache_ram_mib == 300 and p.slot_save_path == ""
    saving = replace(PlainSettings.of(settings), slot_save_path=f"{tmp_path}/")
    assert server_params(tmp_path / "m.gguf", saving, "k", ()).slot_save_path == f"{tmp_path}/"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"\0" * (1 << 20))
    spec = ModelSpec(id="m", path=gguf, owned_by="test", description="m")
    off = estimate_mib(spec, EngineSettings(cache_ram_mib=0))
    assert estimate_mib(spec, settings) == off + 300
