"""The base a fine-tuning job starts from: the embedded GGUF, converted once and kept."""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

import pytest

from corral.catalog.schema import EMBEDDED_FILE, EMBEDDED_PACKAGE

torch = pytest.importorskip("torch")
lora = pytest.importorskip("corral.tuning.lora")


def test_a_converted_base_is_kept_on_disk_and_read_back_the_same(tmp_path: Path) -> None:
    gguf = Path(str(distribution(EMBEDDED_PACKAGE).locate_file(EMBEDDED_FILE)))
    cache = lora.BaseCache(tmp_path / "bases", 2**31)
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "notes.txt").write_text("not corral's")  # an operator's file
    lora._kept.clear()
    converted, tokenizer = lora.load_base(gguf, cache)
    entries = [p for p in (tmp_path / "bases").iterdir() if p.name != "notes.txt"]
    assert len(entries) == 1 and (entries[0] / "done").exists()
    assert (tmp_path / "bases" / "notes.txt").exists()

    lora._kept.clear()  # a new worker: only the disk cache is left
    cached, tokenizer2 = lora.load_base(gguf, cache)
    want, got = converted.state_dict(), cached.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    text = [{"role": "user", "content": "Say ZORP: hello"}]
    assert tokenizer.apply_chat_template(text) == tokenizer2.apply_chat_template(text)
