"""llama.cpp's parameters for one model, shared by the in-process engine and the engine
child. The child imports only this module and xllamacpp (no pydantic, no httpx), which
keeps its own memory to the interpreter, llama.cpp and the model."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Protocol


class LlamaSettings(Protocol):
    """What llama.cpp needs of ``EngineSettings``."""

    @property
    def n_ctx(self) -> int: ...
    @property
    def n_parallel(self) -> int: ...
    @property
    def n_threads(self) -> int: ...
    @property
    def n_batch(self) -> int: ...
    @property
    def n_ubatch(self) -> int: ...
    @property
    def cache_ram_mib(self) -> int: ...
    @property
    def embeddings(self) -> bool: ...
    @property
    def flash_attn(self) -> str: ...
    @property
    def kv_cache_type(self) -> str: ...
    @property
    def chat_template(self) -> str | None: ...
    @property
    def speculative(self) -> str: ...
    @property
    def spec_ngram_size(self) -> int: ...
    @property
    def spec_draft_max(self) -> int: ...


@dataclass(frozen=True)
class PlainSettings:
    """``LlamaSettings`` as plain data: how they travel to the child (as JSON)."""

    n_ctx: int
    n_parallel: int
    n_threads: int
    n_batch: int
    n_ubatch: int
    cache_ram_mib: int
    embeddings: bool
    chat_template: str | None
    speculative: str = "off"
    spec_ngram_size: int = 4
    spec_draft_max: int = 16
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    slot_save_path: str = ""  # where llama.cpp may save and restore slots (saved_prompts)

    @classmethod
    def of(cls, settings: LlamaSettings) -> PlainSettings:
        """A field with a default may be missing from ``settings`` (where slots are
        saved is the engine's to add, not a setting)."""
        return cls(
            **{
                f.name: getattr(settings, f.name)
                if f.default is MISSING
                else getattr(settings, f.name, f.default)
                for f in fields(cls)
            }
        )


@dataclass(frozen=True)
class RopeScaling:
    """How a model reaches positions past the length it was trained on (the catalog's
    ``rope_scaling``): ``yarn`` or ``linear`` stretch RoPE by ``factor`` over
    ``original_context`` (0: the GGUF's own trained length); ``none`` leaves it alone."""

    kind: str = "none"
    factor: float = 1.0
    original_context: int = 0


NO_ROPE_SCALING = RopeScaling()


def server_params(
    model_path: Path,
    settings: LlamaSettings,
    key: str,
    adapters: tuple[Path, ...],
    rope: RopeScaling = NO_ROPE_SCALING,
) -> Any:
    import xllamacpp as xlc

    s = settings
    p = xlc.CommonParams()
    p.model.path = str(model_path)
    p.n_ctx = s.n_ctx
    p.n_parallel = s.n_parallel
    # One KV pool shared by all slots: any single request may use the whole
    # context window, and idle slots don't strand memory.
    p.kv_unified = True
    p.n_batch = s.n_batch
    p.n_ubatch = s.n_ubatch
    p.cache_ram_mib = s.cache_ram_mib
    _attention(p, s.flash_attn, s.kv_cache_type)
    saved = getattr(s, "slot_save_path", "")
    if saved:
        p.slot_save_path = saved
    p.cpuparams.n_threads = s.n_threads
    p.cpuparams_batch.n_threads = s.n_threads
    p.use_jinja = True
    # llama.cpp's listener is always on; its key keeps it closed to all but corral.
    p.api_keys = [key]
    p.endpoint_slots = True  # behind the listener key; corral reads slot state from it
    if s.chat_template is not None:
        p.chat_template = s.chat_template
    if adapters:
        p.lora_init_without_apply = True
        p.lora_adapters = [xlc.CommonAdapterLoraInfo(str(a), 0.0) for a in adapters]
    if s.embeddings:
        p.embedding = True
        p.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    if s.speculative == "ngram":
        _ngram_drafts(p, s.spec_ngram_size, s.spec_draft_max)
    if rope.kind != "none":
        _rope_scaling(p, rope)
    return p


def _attention(p: Any, flash_attn: str, kv_cache_type: str) -> None:
    import xllamacpp as xlc

    kinds = xlc.llama_flash_attn_type
    p.flash_attn_type = {
        "auto": kinds.LLAMA_FLASH_ATTN_TYPE_AUTO,
        "on": kinds.LLAMA_FLASH_ATTN_TYPE_ENABLED,
        "off": kinds.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }[flash_attn]
    kv = {"f16": xlc.ggml_type.GGML_TYPE_F16, "q8_0": xlc.ggml_type.GGML_TYPE_Q8_0}[kv_cache_type]
    p.cache_type_k = kv
    p.cache_type_v = kv


def _rope_scaling(p: Any, rope: RopeScaling) -> None:
    """llama.cpp stretches by ``1 / rope_freq_scale``; left at 0 it keeps the GGUF's
    trained scale (1.0), with which YaRN changes nothing."""
    import xllamacpp as xlc

    kinds = xlc.llama_rope_scaling_type
    p.rope_scaling_type = {
        "yarn": kinds.LLAMA_ROPE_SCALING_TYPE_YARN,
        "linear": kinds.LLAMA_ROPE_SCALING_TYPE_LINEAR,
    }[rope.kind]
    p.rope_freq_scale = 1.0 / rope.factor
    p.yarn_orig_ctx = rope.original_context


def _ngram_drafts(p: Any, size: int, draft_max: int) -> None:
    """llama.cpp's simple n-gram drafter: the last ``size`` tokens are looked up in the
    slot's own context (prompt and output) and what followed them there is the draft.
    Per slot, so one request's text never drafts another's. (llama.cpp at this version
    ignores per-request ``speculative.*`` fields: this is a per-model setting.)"""
    import xllamacpp as xlc

    p.speculative.types = [xlc.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
    p.speculative.draft.n_max = draft_max
    p.speculative.ngram_simple.size_n = size
    p.speculative.ngram_simple.size_m = draft_max
