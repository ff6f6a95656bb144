"""benchmarks/eval_categories.py: an eval run's pass rate per item category."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_categories.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_categories", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def output(category: str, status: str, failed: tuple[str, ...] = ()) -> dict[str, Any]:
    results = [{"name": n, "passed": False} for n in failed] + [{"name": "ok", "passed": True}]
    return {"status": status, "datasource_item": {"category": category}, "results": results}


RUN = {
    "model": "m",
    "output_items": [
        output("results", "pass"),
        output("results", "fail", ("tools called", "fact from the result")),
        output("results", "fail", ("tools called",)),
        output("irrelevance", "error"),
    ],
}


def test_counts_per_category_in_order_of_appearance() -> None:
    got = script().by_category(RUN)
    assert list(got) == ["results", "irrelevance"]
    assert got["results"] == {
        "passed": 1,
        "total": 3,
        "errored": 0,
        "failed_graders": {"tools called": 2, "fact from the result": 1},
    }
    assert got["irrelevance"]["errored"] == 1


def test_table_rows_carry_the_rate_and_its_interval() -> None:
    rows = script().table({"runs": [RUN]})
    assert rows[1][:3] == ["m", "results", "1/3"]
    assert rows[1][3].startswith("33% [")
    assert rows[1][5] == "tools called (2)"
