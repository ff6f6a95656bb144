"""Where an engine's saved slots live: one folder per configuration of its KV cells."""

from __future__ import annotations

from pathlib import Path

from corral.engines.saved_prompts import saved_prompts_dir


def test_the_folder_is_named_by_everything_the_cells_depend_on(tmp_path: Path) -> None:
    base = saved_prompts_dir(tmp_path, "fp_model", 8192, 8, ())
    assert base == saved_prompts_dir(tmp_path, "fp_model", 8192, 8, ())
    assert base.parent == tmp_path
    others = {
        saved_prompts_dir(tmp_path, "fp_other_weights", 8192, 8, ()),
        saved_prompts_dir(tmp_path, "fp_model", 4096, 8, ()),
        saved_prompts_dir(tmp_path, "fp_model", 8192, 4, ()),
        saved_prompts_dir(tmp_path, "fp_model", 8192, 8, (Path("a.gguf"),)),
    }
    assert base not in others and len(others) == 4
