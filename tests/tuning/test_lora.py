"""The base a fine-tuning job starts from: the embedded GGUF, converted once and kept.

Converting the GGUF costs ~20 s, so this test reads the base from the test session's
cache (tests/conftest.py) when the end-to-end fine-tuning tests already converted and
kept it, and converts it (into the same cache) otherwise; what it reads back is checked
against the GGUF's own tensors, dequantised by the gguf package."""

from __future__ import annotations

import os
from importlib.metadata import distribution
from pathlib import Path

import pytest

from corral.catalog.schema import EMBEDDED_FILE, EMBEDDED_PACKAGE

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
lora = pytest.importorskip("corral.tuning.lora")


def _gguf_tensor(path: Path, name: str) -> object:
    reader = gguf.GGUFReader(str(path))
    tensor = next(t for t in reader.tensors if t.name == name)
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return torch.from_numpy(values.reshape([int(n) for n in reversed(tensor.shape)]).copy())


def test_a_kept_base_reads_back_as_the_gguf_says(tmp_path: Path) -> None:
    path = Path(str(distribution(EMBEDDED_PACKAGE).locate_file(EMBEDDED_FILE)))
    shared = os.environ.get("CORRAL_FINE_TUNING__BASE_CACHE_DIR")
    cache = lora.BaseCache(Path(shared) if shared else tmp_path / "bases", 2**31)
    lora._kept.clear()
    lora.load_base(path, cache)  # converted and kept, or read back
    entries = [p for p in cache.dir.iterdir() if lora._ENTRY.fullmatch(p.name)]
    assert len(entries) == 1 and (entries[0] / "done").exists()

    lora._kept.clear()  # a new worker: only the disk cache is left
    model, tokenizer = lora.load_base(path, cache)
    weights = model.state_dict()
    embedding = _gguf_tensor(path, "token_embd.weight")
    assert torch.equal(weights["model.embed_tokens.weight"], embedding)
    norm = _gguf_tensor(path, "blk.0.attn_norm.weight")
    assert torch.equal(weights["model.layers.0.input_layernorm.weight"], norm)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Say ZORP: hi"}])
    assert tokenizer.decode(ids).startswith("<|im_start|>")


def test_keeping_a_base_removes_only_corral_s_entries(tmp_path: Path) -> None:
    cache = tmp_path / "bases"
    cache.mkdir()
    (cache / "notes.txt").write_text("an operator's file")
    old = cache / ("0" * 32)
    old.mkdir()
    config = type("Config", (), {"save_pretrained": lambda self, d: None})()
    model = torch.nn.Linear(2, 2)
    model.config = config
    tokenizer = type("Tok", (), {"save_pretrained": lambda self, d: None})()
    entry = cache / ("a" * 32)
    lora._keep(entry, model, tokenizer)
    assert sorted(p.name for p in cache.iterdir()) == [entry.name, "notes.txt"]
    assert (entry / "done").exists() and (entry / "model.safetensors").exists()
