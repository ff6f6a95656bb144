"""llama.cpp's parameters as corral's engine settings make them."""

from __future__ import annotations

from pathlib import Path

import xllamacpp as xlc

from corral.core.config import EngineSettings
from corral.engines.params import PlainSettings, server_params


def test_flash_attention_and_the_kv_cache_type_reach_llama_cpp() -> None:
    kinds, types = xlc.llama_flash_attn_type, xlc.ggml_type

    def params(**settings: str) -> tuple[object, object, object]:
        plain = PlainSettings.of(EngineSettings(**settings))  # as it travels to the child
        p = server_params(Path("m.gguf"), plain, "key", ())
        return p.flash_attn_type, p.cache_type_k, p.cache_type_v

    f16, q8 = int(types.GGML_TYPE_F16), int(types.GGML_TYPE_Q8_0)
    assert params() == (int(kinds.LLAMA_FLASH_ATTN_TYPE_AUTO), f16, f16)
    assert params(flash_attn="off") == (int(kinds.LLAMA_FLASH_ATTN_TYPE_DISABLED), f16, f16)
    assert params(flash_attn="on", kv_cache_type="q8_0") == (
        int(kinds.LLAMA_FLASH_ATTN_TYPE_ENABLED),
        q8,
        q8,
    )
