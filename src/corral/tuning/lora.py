"""LoRA fine-tuning with PEFT on transformers (CPU here; CUDA where present).

The base model is the snapshot's own GGUF: transformers loads a Llama-architecture GGUF
directly (dequantised). Loss is on assistant tokens only, with the model's own
chat template; data order and initialisation come from the job's seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.tuning.gguf_export import write_adapter

log = logging.getLogger(__name__)

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_RANK = 16
LORA_ALPHA = 32
BASE_LEARNING_RATE = 1e-3
IGNORE = -100


class Cancelled(Exception):
    """Raised by the progress callback to stop training at a step boundary."""


class ExampleError(ValueError):
    """An example the template or the context cannot take."""


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    valid_loss: float | None
    tokens_per_s: float
    eta_s: float
    trained_tokens: int
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Result:
    adapter: Path
    trained_tokens: int
    steps: int
    tokens_per_s: float


Encoded = tuple[list[int], list[int]]


# The worker keeps the most recent base in memory (weights, config, tokenizer): the GGUF
# conversion takes seconds to tens of seconds, a fresh model from the kept weights one.
_kept: dict[str, tuple[Any, dict[str, Any], Any]] = {}


_ENTRY = re.compile(r"[0-9a-f]{32}|\.[0-9a-f]{32}\.[0-9]+\.partial")


@dataclass(frozen=True)
class BaseCache:
    """Where a converted base is kept on disk, and the largest kept (bytes; 0: none)."""

    dir: Path
    limit_bytes: int


def load_base(gguf: Path, cache: BaseCache | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 from the GGUF (dequantised by transformers); from
    the worker's memory or the disk cache when this GGUF was converted before."""
    from transformers import AutoModelForCausalLM

    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    kept = _kept.get(key)
    if kept is not None:
        config, state, tokenizer = kept
        model = AutoModelForCausalLM.from_config(config, dtype="float32")  # type: ignore[no-untyped-call]
        model.load_state_dict(state)
        return model, tokenizer
    started = time.perf_counter()
    model, tokenizer = _converted(gguf, key, cache)
    log.info("loaded %s for training in %.1fs", gguf.name, time.perf_counter() - started)
    _kept.clear()
    _kept[key] = (
        model.config,
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        tokenizer,
    )
    return model, tokenizer


def _converted(gguf: Path, key: str, cache: BaseCache | None) -> tuple[Any, Any]:
    """The GGUF as transformers weights: read back from the cache, or converted (most of
    the ~20 s is transformers parsing the GGUF, not dequantising) and then kept there.
    The cache only saves time: a failure to read or write it converts as before."""
    if cache is None:
        return _convert(gguf)
    # The entry's name is a hash: nothing a request says reaches the path.
    entry = cache.dir / hashlib.sha256(key.encode()).hexdigest()[:32]
    if (entry / "done").exists():
        try:
            return _read(entry)
        except Exception:  # removed or damaged under us: convert
            log.warning("could not read the kept base %s; converting", entry, exc_info=True)
    model, tokenizer = _convert(gguf)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size <= cache.limit_bytes:
        try:
            _keep(entry, model, tokenizer)
        except Exception:  # the cache only saves time
            log.warning("could not keep the base in %s", entry.parent, exc_info=True)
    return model, tokenizer


def _convert(gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return model, AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def _read(entry: Path) -> tuple[Any, Any]:
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(entry))
    model = AutoModelForCausalLM.from_config(config, dtype="float32")  # type: ignore[no-untyped-call]
    load_model(model, str(entry / "model.safetensors"))
    return model, AutoTokenizer.from_pretrained(str(entry))


def _keep(entry: Path, model: Any, tokenizer: Any) -> None:
    """Write the cache's entry (other finished entries removed: it holds the latest
    base) in a temporary directory renamed into place, so no reader sees half of one.
    Another worker's unfinished entry is left to it unless it is an hour old (a crash)."""
    from safetensors.torch import save_model

    entry.parent.mkdir(parents=True, exist_ok=True)
    for old in entry.parent.iterdir():  # only corral's own entries, whatever else is there
        if not _ENTRY.fullmatch(old.name) or old == entry:
            continue
        stale = time.time() - old.stat().st_mtime > 3600
        if not old.name.startswith(".") or stale:
            shutil.rmtree(old, ignore_errors=True)
    partial = entry.parent / f".{entry.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    # The weights, config and tokenizer apart: transformers refuses ``save_pretrained`` of
    # a model it loaded from a GGUF ("quantized with gguf"), though these are float32.
    save_model(model, str(partial / "model.safetensors"))  # shares tied weights once
    model.config.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    (partial / "done").touch()
    try:
        partial.rename(entry)
    except OSError:  # another worker put the same base there first
        shutil.rmtree(partial, ignore_errors=True)


def _template(tokenizer: Any, messages: list[dict[str, Any]], generation: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    return str(text)


def encode(tokenizer: Any, messages: list[dict[str, Any]], max_tokens: int) -> Encoded:
    """Token ids and labels: labels are the ids on assistant turns, IGNORE elsewhere."""
    full = _template(tokenizer, messages, False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = len(_template(tokenizer, messages[:i], True)) if i else 0
        end = len(_template(tokenizer, messages[: i + 1], False))
        spans.append((start, end))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    if len(ids) > max_tokens:
        raise ExampleError(f"{len(ids)} tokens, more than the limit of {max_tokens}")
    labels = [
        tok if any(s <= begin < e for s, e in spans) else IGNORE
        for tok, (begin, _) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    if all(label == IGNORE for label in labels):
        raise ExampleError("no assistant tokens to learn from")
    return ids, labels


def _batch(examples: list[Encoded], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = [x + [pad_id] * (width - len(x)) for x, _ in examples]
    labels = [y + [IGNORE] * (width - len(y)) for _, y in examples]
    mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in examples]
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def schedule(n_examples: int, hyper: Hyperparameters, seed: int) -> list[list[int]]:
    """Every step's example indices, for all epochs: a pure function of the seed."""
    rng = random.Random(seed)
    steps: list[list[int]] = []
    for _ in range(hyper.n_epochs):
        order = list(range(n_examples))
        rng.shuffle(order)
        steps += [order[i : i + hyper.batch_size] for i in range(0, n_examples, hyper.batch_size)]
    return steps


def train(
    *,
    gguf: Path,
    out_dir: Path,
    train_examples: list[list[dict[str, Any]]],
    valid_examples: list[list[dict[str, Any]]],
    hyper: Hyperparameters,
    seed: int,
    max_tokens: int,
    threads: int,
    checkpoint_every: int,
    on_progress: Callable[[Progress], None],
    base_cache: BaseCache | None = None,
) -> Result:
    """Train (resuming from the newest checkpoint in ``out_dir``), then export the adapter."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, tokenizer = load_base(gguf, base_cache)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = [encode(tokenizer, m, max_tokens) for m in train_examples]
    valid_set = [encode(tokenizer, m, max_tokens) for m in valid_examples]
    config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        target_modules=TARGET_MODULES,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=BASE_LEARNING_RATE * hyper.learning_rate_multiplier, weight_decay=0.0
    )
    steps = schedule(len(train_set), hyper, seed)
    per_epoch = math.ceil(len(train_set) / hyper.batch_size)
    done, trained = 0, 0
    ckpt_dir = out_dir / "checkpoints"
    latest = _latest_checkpoint(ckpt_dir)
    if latest is not None:
        set_peft_model_state_dict(model, torch.load(latest / "adapter.pt", weights_only=True))
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        state = json.loads((latest / "state.json").read_text())
        done, trained = int(state["step"]), int(state["trained_tokens"])
        log.info("resuming from %s", latest)

    def valid_loss() -> float | None:
        if not valid_set:
            return None
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(valid_set), hyper.batch_size):
                batch = _batch(valid_set[i : i + hyper.batch_size], pad_id)
                total += float(model(**batch).loss) * len(valid_set[i : i + hyper.batch_size])
        model.train()
        return total / len(valid_set)

    model.train()
    started, tokens_now = time.perf_counter(), 0
    rate = 0.0
    for step in range(done, len(steps)):
        batch = _batch([train_set[i] for i in steps[step]], pad_id)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        n_tokens = int(batch["attention_mask"].sum())
        trained += n_tokens
        tokens_now += n_tokens
        elapsed = time.perf_counter() - started
        rate = tokens_now / elapsed if elapsed > 0 else 0.0
        number = step + 1
        remaining = len(steps) - number
        last = number == len(steps)
        checkpoint = None
        vloss = None
        if last or number % checkpoint_every == 0:
            vloss = valid_loss()
            checkpoint = _save_checkpoint(ckpt_dir, number, trained, model, optimizer)
        on_progress(
            Progress(
                step=number,
                total_steps=len(steps),
                epoch=step // per_epoch + 1,
                train_loss=float(loss.detach()),
                valid_loss=vloss,
                tokens_per_s=rate,
                eta_s=remaining * elapsed / max(1, number - done),
                trained_tokens=trained,
                checkpoint=checkpoint,
            )
        )
    from peft import get_peft_model_state_dict

    cfg = model.config
    adapter = out_dir / "adapter.gguf"
    write_adapter(
        adapter,
        get_peft_model_state_dict(model),
        alpha=LORA_ALPHA,
        n_head=cfg.num_attention_heads,
        n_head_kv=getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
    )
    return Result(adapter=adapter, trained_tokens=trained, steps=len(steps), tokens_per_s=rate)


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(
        (p for p in ckpt_dir.glob("step-*") if (p / "state.json").exists()),
        key=lambda p: int(p.name.removeprefix("step-")),
    )
    return found[-1] if found else None


def _save_checkpoint(ckpt_dir: Path, step: int, trained: int, model: Any, optimizer: Any) -> Path:
    import torch
    from peft import get_peft_model_state_dict

    final = ckpt_dir / f"step-{step}"
    tmp = ckpt_dir / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(get_peft_model_state_dict(model), tmp / "adapter.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "trained_tokens": trained}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final
