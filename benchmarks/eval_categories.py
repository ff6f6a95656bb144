"""Pass rates per category of an eval run: reads the JSON result `corral eval run` wrote
and groups its output items by an item field (`category` by default).

    python benchmarks/eval_categories.py eval-results/tool-use-20261206T070000Z.json

prints, per model of the result, a row per category: passed/items, the rate with its
95% Wilson interval (as `corral eval run` shows it), errored items and the grader that
failed most. `--markdown` prints the table as markdown.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from corral.cli.eval_results import wilson_interval


def by_category(run: dict[str, Any], field: str = "category") -> dict[str, dict[str, Any]]:
    """``{category: {passed, total, errored, failed_graders}}`` over the run's output
    items, in the order the categories first appear."""
    out: dict[str, dict[str, Any]] = {}
    failed: dict[str, Counter[str]] = defaultdict(Counter)
    for item in run.get("output_items", []):
        category = str(item.get("datasource_item", {}).get(field, "?"))
        row = out.setdefault(category, {"passed": 0, "total": 0, "errored": 0})
        row["total"] += 1
        row["passed"] += item.get("status") == "pass"
        row["errored"] += item.get("status") == "error"
        failed[category].update(r["name"] for r in item.get("results", []) if not r["passed"])
    for category, row in out.items():
        row["failed_graders"] = dict(failed[category].most_common())
    return out


def table(document: dict[str, Any], field: str = "category") -> list[list[str]]:
    rows = [["model", field, "passed", "pass rate (95% CI)", "errored", "failed most"]]
    for run in document.get("runs", []):
        for category, c in by_category(run, field).items():
            low, high = wilson_interval(c["passed"], c["total"])
            rate = c["passed"] / c["total"]
            worst = next(iter(c["failed_graders"].items()), None)
            rows.append(
                [
                    str(run.get("model")),
                    category,
                    f"{c['passed']}/{c['total']}",
                    f"{rate:.0%} [{low:.0%}, {high:.0%}]",
                    str(c["errored"]),
                    f"{worst[0]} ({worst[1]})" if worst else "",
                ]
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result", type=Path, help="a JSON result of `corral eval run`")
    p.add_argument("--field", default="category", help="the item field to group by")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    rows = table(json.loads(args.result.read_text(encoding="utf-8")), args.field)
    if args.markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|---|---|---:|---:|---:|---|")
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
