"""The GGUF adapter export: names, shapes and the q/k rotary permutation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corral.tuning.gguf_export import adapter_tensors, permute_rows, write_adapter

torch = pytest.importorskip("torch")


def test_permute_interleaves_the_halves_of_each_head() -> None:
    # 2 heads of 4 rows: per head [a0 a1 b0 b1] -> [a0 b0 a1 b1]
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert permute_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_tensor_names_and_which_are_permuted() -> None:
    a = torch.ones(2, 8)
    b = torch.arange(16, dtype=torch.float32).reshape(8, 2)
    state = {
        "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight": a,
        "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight": b,
        "base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight": b,
        "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": a,
    }
    out = adapter_tensors(state, n_head=2, n_head_kv=1)
    assert sorted(out) == [
        "blk.0.ffn_down.weight.lora_a",
        "blk.3.attn_q.weight.lora_a",
        "blk.3.attn_q.weight.lora_b",
        "blk.3.attn_v.weight.lora_b",
    ]
    assert np.array_equal(out["blk.3.attn_q.weight.lora_b"], permute_rows(b.numpy(), 2))
    assert np.array_equal(out["blk.3.attn_v.weight.lora_b"], b.numpy())  # v: as is


def test_written_file_is_a_llama_cpp_lora_adapter(tmp_path: Path) -> None:
    import gguf

    state = {
        "x.layers.0.self_attn.k_proj.lora_A.weight": torch.ones(2, 8),
        "x.layers.0.self_attn.k_proj.lora_B.weight": torch.ones(4, 2),
    }
    path = tmp_path / "adapter.gguf"
    assert write_adapter(path, state, alpha=32, n_head=2, n_head_kv=1) == 1
    reader = gguf.GGUFReader(str(path))
    fields = {name: reader.fields[name] for name in reader.fields}

    def text(name: str) -> str:
        field = fields[name]
        return bytes(field.parts[field.data[0]]).decode()

    assert text("general.type") == "adapter"
    assert text("adapter.type") == "lora"
    assert text("general.architecture") == "llama"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 32.0
    assert {t.name for t in reader.tensors} == {
        "blk.0.attn_k.weight.lora_a",
        "blk.0.attn_k.weight.lora_b",
    }
    assert not list(tmp_path.glob("*.tmp"))
