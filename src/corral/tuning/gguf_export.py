"""Write a PEFT LoRA adapter as a llama.cpp GGUF LoRA adapter.

llama.cpp's adapter format: ``general.type=adapter``, ``adapter.type=lora``,
``adapter.lora.alpha``, tensors ``blk.N.<name>.weight.lora_a`` (r x in) and ``lora_b``
(out x r). One trap: transformers un-permutes the q/k projection rows when it loads a
Llama GGUF, so ``lora_b`` of q_proj and k_proj is permuted back into llama.cpp's rotary
layout (per head, the two halves interleaved) before it is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_NAME = re.compile(r"layers\.(\d+)\.(self_attn\.\w+_proj|mlp\.\w+_proj)\.lora_([AB])\.")


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf ``permute``: rows into the rotary (interleaved) layout."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def adapter_tensors(state: dict[str, Any], n_head: int, n_head_kv: int) -> dict[str, np.ndarray]:
    """PEFT state dict (torch tensors) → GGUF tensor names and float32 arrays."""
    out: dict[str, np.ndarray] = {}
    for key, tensor in state.items():
        match = _NAME.search(key)
        if match is None:
            continue
        layer, module, ab = match.groups()
        if module not in HF_TO_GGUF:
            continue
        arr = tensor.detach().to("cpu").float().numpy()
        if ab == "B" and module == "self_attn.q_proj":
            arr = permute_rows(arr, n_head)
        elif ab == "B" and module == "self_attn.k_proj":
            arr = permute_rows(arr, n_head_kv)
        out[f"blk.{layer}.{HF_TO_GGUF[module]}.weight.lora_{ab.lower()}"] = np.ascontiguousarray(
            arr, dtype=np.float32
        )
    return out


def write_adapter(
    path: Path, state: dict[str, Any], *, alpha: float, n_head: int, n_head_kv: int
) -> int:
    """Write the adapter (to a temp file, then renamed). Returns the number of A/B pairs."""
    import gguf

    tensors = adapter_tensors(state, n_head, n_head_kv)
    if not tensors:
        raise ValueError("the adapter has no LoRA tensors for llama.cpp")
    tmp = path.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return len(tensors) // 2
