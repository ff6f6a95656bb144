from __future__ import annotations

from corral.vector_stores.chunking import chunk_text, count_tokens, layout, pieces


def test_tokens_are_counted_like_a_bpe_would_roughly() -> None:
    assert count_tokens("The cat sat on the mat.") == 7
    assert count_tokens("internationalization") == 3  # long words split every 8 letters
    assert count_tokens("1234567") == 3  # digits in threes
    assert count_tokens("日本語") == 3  # one per CJK character
    assert count_tokens("   ") == 0


def test_chunks_overlap_by_the_given_tokens_and_cover_the_text() -> None:
    text = " ".join(f"w{i}" for i in range(1000))  # "w12": a letter token and a digit token
    chunks = chunk_text(text, size=100, overlap=40)
    assert all(c.tokens <= 100 for c in chunks)
    assert chunks[0].text.startswith("w0 ") and chunks[-1].text.endswith("w999")
    # Each chunk starts 60 tokens (30 words) after the one before.
    assert chunks[1].text.startswith("w30 ") and chunks[2].text.startswith("w60 ")
    assert len(chunks) == 33  # 2000 tokens: windows at 0, 60, ... 1920


def test_short_and_empty_texts() -> None:
    (only,) = chunk_text("just a few words", 800, 400)
    assert only.text == "just a few words" and only.tokens == 4
    assert chunk_text("\n \t", 800, 400) == []


def test_pieces_fit_a_byte_bound_and_cut_at_spaces() -> None:
    text = "lorem ipsum dolor " * 200
    cut = pieces(text, 100)
    assert all(len(p.encode()) <= 100 for p in cut)
    assert all(not p.endswith("lore") for p in cut)  # never mid-word where a space exists
    assert " ".join(cut).split() == text.split()


def test_pieces_never_split_a_character() -> None:
    text = "é" * 300  # two bytes each, no spaces
    cut = pieces(text, 51)
    assert all(len(p.encode()) <= 51 for p in cut)
    assert "".join(cut) == text
    assert pieces("short", 100) == ["short"]


def test_overlapping_chunks_share_their_units() -> None:
    text = " ".join(f"w{i}" for i in range(1000))  # 2000 tokens
    laid = layout(text, 800, 400)
    assert laid.chunks == chunk_text(text, 800, 400)
    assert len(laid.units) == 20  # 100-token units: every token embedded once
    assert laid.spans[:3] == [(0, 8), (4, 12), (8, 16)]
    for chunk, (start, end) in zip(laid.chunks, laid.spans, strict=True):
        assert " ".join(laid.units[start:end]) == chunk.text
    # A size and step with no common unit of 16+ tokens: each chunk embedded alone.
    odd = layout(text, 333, 100)
    assert odd.units == [c.text for c in odd.chunks]
    assert odd.spans[:2] == [(0, 1), (1, 2)]
    short = layout("a few words", 800, 400)
    assert short.units == ["a few words"] and short.spans == [(0, 1)]
