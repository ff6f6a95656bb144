"""benchmarks/retrieval.py: its scoring (rank of the chunk holding the answer, recall@k)
and the shipped corpus (each answer once in the corpus, in its own page)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("retrieval", BENCHMARKS / "retrieval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("retrieval", module)
    spec.loader.exec_module(module)
    return module


def test_rank_is_the_first_chunk_of_the_page_holding_the_answer() -> None:
    r = script()
    q = r.Question(question="?", doc="a.md", answer="27 days\nof leave", kind="plain")
    results = [
        ("b.md", "you get 27 days of leave"),  # the answer, another page
        ("a.md", "days of leave are earned monthly"),  # its page, no answer
        ("a.md", "Everyone has 27  days of\tleave a year"),  # whitespace folded
        ("a.md", "27 days of leave"),
    ]
    assert r.rank_of(q, results) == 3
    assert r.rank_of(q, results[:2]) is None


def test_recall_at_k() -> None:
    r = script()
    ranks = [1, 3, None, 5, 6]
    assert r.recall(ranks, 1) == 0.2
    assert r.recall(ranks, 5) == 0.6
    assert r.recall([], 5) == 0.0


def test_the_shipped_questions_each_have_one_answer_in_their_page() -> None:
    r = script()
    qs = r.questions()
    assert 25 <= len(qs) <= 50
    assert {q.kind for q in qs} == {"plain", "paraphrase", "rare"}
    assert r.check_corpus(r.corpus(), qs) == []


def test_check_corpus_names_an_answer_found_twice() -> None:
    r = script()
    q = r.Question(question="?", doc="a.md", answer="noon", kind="plain")
    assert r.check_corpus({"a.md": "at noon", "b.md": "from noon"}, [q])
    assert r.check_corpus({"a.md": "at noon", "b.md": "later"}, [q]) == []
