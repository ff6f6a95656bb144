from __future__ import annotations

import pytest

from corral.evals import similarity


def test_identical_texts_score_one() -> None:
    text = "the cat sat on the mat"
    for name in sorted(similarity.SUPPORTED):
        assert similarity.metric(name)(text, text) == pytest.approx(1.0), name


def test_disjoint_texts_score_zero() -> None:
    for name in ("rouge_1", "rouge_2", "rouge_l", "bleu"):
        assert similarity.metric(name)("alpha beta gamma", "delta epsilon zeta") == 0.0


def test_rouge_values() -> None:
    # unigram overlap 5 of 6 each side: F1 = 5/6
    assert similarity.rouge_n("the cat sat on the mat", "the cat sat on a mat", 1) == (
        pytest.approx(5 / 6)
    )
    # bigrams: (the cat)(cat sat)(sat on) shared of 5 each
    assert similarity.rouge_n("the cat sat on the mat", "the cat sat on a mat", 2) == (
        pytest.approx(3 / 5)
    )
    assert similarity.rouge_l("a b c d", "a x c d") == pytest.approx(3 / 4)


def test_fuzzy_match_and_cosine() -> None:
    assert similarity.fuzzy_match("bonjour", "bonjour!") > 0.9
    assert similarity.fuzzy_match("bonjour", "hello") < 0.5
    assert similarity.cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert similarity.cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)


def test_long_texts_are_bounded() -> None:
    long = "word " * 50_000
    assert similarity.rouge_l(long, long) == pytest.approx(1.0)
