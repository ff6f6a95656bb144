"""Text similarity scores in [0, 1] for the ``text_similarity`` grader.

fuzzy_match is rapidfuzz's normalised Indel ratio, bleu is sacreBLEU's sentence BLEU.
ROUGE is written here: the reference package (rouge-score) pulls nltk and absl for what
is an n-gram overlap and a longest common subsequence over whitespace tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

TOKEN = re.compile(r"\w+", re.UNICODE)
LCS_TOKENS = 2000  # the LCS is quadratic: longer texts are compared on their start
# What the grader can compute locally; cosine needs an embedding model (see graders).
SUPPORTED = frozenset(
    {"fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"}
)


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


# rapidfuzz and sacrebleu are imported where they are used: sacreBLEU (with lxml and
# its other dependencies) adds ~20 MB to every API process, which grades nothing unless
# an eval asks for these metrics.


def fuzzy_match(candidate: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return float(fuzz.ratio(candidate, reference)) / 100.0


def bleu(candidate: str, reference: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(candidate, [reference]).score) / 100.0


def _f1(overlap: int, produced: int, expected: int) -> float:
    if overlap == 0 or produced == 0 or expected == 0:
        return 0.0
    precision, recall = overlap / produced, overlap / expected
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: str, reference: str, n: int) -> float:
    def grams(words: list[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    got, want = grams(tokens(candidate)), grams(tokens(reference))
    return _f1(sum((got & want).values()), sum(got.values()), sum(want.values()))


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    got, want = tokens(candidate)[:LCS_TOKENS], tokens(reference)[:LCS_TOKENS]
    return _f1(_lcs(got, want), len(got), len(want))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def metric(name: str) -> Callable[[str, str], float]:
    if name == "fuzzy_match":
        return fuzzy_match
    if name == "bleu":
        return bleu
    if name == "rouge_l":
        return rouge_l
    if name.startswith("rouge_") and name[6:].isdigit():
        n = int(name[6:])
        return lambda c, r: rouge_n(c, r, n)
    raise ValueError(f"no local metric {name!r}")
