"""The engine's slots saved when it closes and restored when it starts again, so the
prompts it held (an agent's instructions and tools) survive a restart.

llama.cpp saves a slot's tokens and KV cells to a file of its own (``/slots/{id}?action=
save``, only under ``slot_save_path``) and restores one into a slot (``action=restore``);
a request that shares the restored prefix then finds it by llama.cpp's own slot
similarity. The files live in a folder named by everything the cells depend on (the
engine's fingerprint: llama.cpp's version, the weights, RoPE scaling; the window, the
slots, the adapters): a folder of another model or other settings is never read. The
file names are corral's; nothing a request sends reaches them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from corral.engines.base import fingerprint

log = logging.getLogger(__name__)
SAVE_TIMEOUT_S = 20.0  # a close waits this long at most for the slots to be written


def saved_prompts_dir(root: Path, engine_fingerprint: str, *settings: object) -> Path:
    """Where one engine configuration keeps its slots (``settings``: what else its KV
    cells depend on)."""
    return root / fingerprint(engine_fingerprint, *settings)


def _name(slot: int) -> str:
    return f"slot-{slot}.bin"


async def save(http: httpx.AsyncClient, folder: Path, slots: int, limit_bytes: int) -> int:
    """Each slot that holds a prompt, written while the folder stays within
    ``limit_bytes`` (the rest dropped); the number of tokens kept."""
    kept_tokens, kept_bytes = 0, 0
    try:
        async with asyncio.timeout(SAVE_TIMEOUT_S):
            for slot in range(slots):
                r = await http.post(f"/slots/{slot}?action=save", json={"filename": _name(slot)})
                path = folder / _name(slot)
                if r.status_code != 200:
                    path.unlink(missing_ok=True)
                    continue
                written, tokens = int(r.json().get("n_written", 0)), int(r.json()["n_saved"])
                if tokens == 0 or kept_bytes + written > limit_bytes:
                    path.unlink(missing_ok=True)
                    continue
                kept_tokens, kept_bytes = kept_tokens + tokens, kept_bytes + written
    except (httpx.HTTPError, TimeoutError, ValueError, KeyError):
        log.warning("saving the engine's prompts stopped early", exc_info=True)
    log.info("saved %d prompt tokens (%d MiB) to %s", kept_tokens, kept_bytes >> 20, folder)
    return kept_tokens


async def restore(http: httpx.AsyncClient, folder: Path, slots: int) -> int:
    """The saved slots back into the engine; the number of tokens restored."""
    restored = 0
    for slot in range(slots):
        if not (folder / _name(slot)).is_file():
            continue
        try:
            r = await http.post(f"/slots/{slot}?action=restore", json={"filename": _name(slot)})
            r.raise_for_status()
            restored += int(r.json().get("n_restored", 0))
        except (httpx.HTTPError, ValueError):  # a file llama.cpp refuses: start without it
            log.warning("slot %d's saved prompt was not restored", slot, exc_info=True)
            (folder / _name(slot)).unlink(missing_ok=True)
    if restored:
        log.info("restored %d prompt tokens from %s", restored, folder)
    return restored
