"""Text into overlapping chunks of about N tokens, and chunks into pieces an embedding
model is sure to take.

Tokens are counted by an approximation, not by a model's tokenizer: a chunk size is
OpenAI's notion (800 tokens of its own tokenizers), which the embedded model's tokenizer
does not share, and asking the engine's ``/tokenize`` for every window would cost a
request per chunk. The approximation follows what cl100k-style tokenizers do with text:
a run of up to 8 Latin letters is one token, digits go in threes, every other letter
(CJK, say) and every symbol is one. On English prose it is within ~20% of tiktoken's
counts; on code and other scripts it errs towards more tokens (smaller chunks).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

TOKEN = re.compile(r"[A-Za-z\u00C0-\u024F]{1,8}|\d{1,3}|[^\W\d_]|[^\s]", re.UNICODE)
SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int


def count_tokens(text: str) -> int:
    return sum(1 for _ in TOKEN.finditer(text))


def chunk_text(text: str, size: int, overlap: int) -> list[Chunk]:
    """Windows of ``size`` tokens, each starting ``size - overlap`` tokens after the last;
    a chunk is the original text from its first token to its last (whitespace kept)."""
    spans = [m.span() for m in TOKEN.finditer(text)]
    if not spans:
        return []
    step = max(1, size - overlap)
    chunks: list[Chunk] = []
    for first in range(0, len(spans), step):
        last = min(first + size, len(spans)) - 1
        chunks.append(Chunk(text[spans[first][0] : spans[last][1]], last - first + 1))
        if last == len(spans) - 1:
            break
    return chunks


@dataclass(frozen=True)
class Layout:
    """A file's chunks, and the units embedded for them: chunk ``i`` is units
    ``spans[i][0]`` up to ``spans[i][1]``. Overlapping chunks share their units, so each
    token is embedded once, not once per chunk it is in (twice with ``auto``)."""

    chunks: list[Chunk]
    units: list[str]
    spans: list[tuple[int, int]]


UNIT_MOST = 100  # tokens in a shared unit, at most
UNIT_LEAST = 16  # below this a unit says too little alone: each chunk is its own unit


def layout(text: str, size: int, overlap: int) -> Layout:
    """Chunks as ``chunk_text`` makes them, with units of ``u`` tokens where ``u`` divides
    both the chunk size and the step between chunks, so every chunk is whole units."""
    chunks = chunk_text(text, size, overlap)
    step = max(1, size - overlap)
    unit = _unit(math.gcd(size, step))
    if unit is None or len(chunks) < 2:
        return Layout(chunks, [c.text for c in chunks], [(i, i + 1) for i in range(len(chunks))])
    spans = [m.span() for m in TOKEN.finditer(text)]
    units = [
        text[spans[first][0] : spans[min(first + unit, len(spans)) - 1][1]]
        for first in range(0, len(spans), unit)
    ]
    at = [
        (i * step // unit, min(len(units), (i * step + size + unit - 1) // unit))
        for i in range(len(chunks))
    ]
    return Layout(chunks, units, at)


def _unit(common: int) -> int | None:
    best = max(d for d in range(1, min(common, UNIT_MOST) + 1) if common % d == 0)
    return best if best >= UNIT_LEAST else None


def pieces(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, at whitespace where
    there is some. A byte-level tokenizer never makes more tokens than bytes, so a piece of
    ``limit`` bytes fits an embedding window of ``limit`` tokens whatever the text."""
    data = text.encode()
    if len(data) <= limit:
        return [text]
    out: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        if end < len(data):
            end = _cut(data, start, end)
        piece = data[start:end].decode(errors="ignore").strip()
        if piece:
            out.append(piece)
        start = end
    return out


def _cut(data: bytes, start: int, end: int) -> int:
    """Where to end a piece: after the last whitespace in its second half, else at a
    character boundary (never inside a UTF-8 sequence)."""
    space = max(data.rfind(b" ", start, end), data.rfind(b"\n", start, end))
    if space > start + (end - start) // 2:
        return space + 1
    while end > start + 1 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return end
