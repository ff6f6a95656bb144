"""Eval run objects turned into results: pass rates with Wilson intervals, the table,
the JSON document, the threshold check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

Z_95 = 1.959963984540054


def wilson_interval(passed: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval: unlike p ± z·se it stays in [0, 1] and means something
    at 0/n, n/n and the small n that evals have."""
    if total <= 0:
        return 0.0, 1.0
    p = passed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1; rounding would leave 1e-17 off it.
    low = 0.0 if passed <= 0 else max(0.0, centre - half)
    high = 1.0 if passed >= total else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class RunSummary:
    label: str
    run_id: str
    status: str
    error: str | None
    total: int
    passed: int
    failed: int
    errored: int
    graders: dict[str, tuple[int, int]]  # name -> (passed, failed)
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float

    @property
    def pass_rate(self) -> float:
        # Errored items count against the rate: an eval that cannot run is not passing.
        return self.passed / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.passed, self.total)


def summarize(label: str, run: dict[str, Any]) -> RunSummary:
    counts = run.get("result_counts") or {}
    usage = run.get("per_model_usage") or []
    error = run.get("error")
    return RunSummary(
        label=label,
        run_id=str(run.get("id", "")),
        status=str(run.get("status", "")),
        error=str(error.get("message")) if isinstance(error, dict) else None,
        total=int(counts.get("total", 0)),
        passed=int(counts.get("passed", 0)),
        failed=int(counts.get("failed", 0)),
        errored=int(counts.get("errored", 0)),
        graders={
            str(r["testing_criteria"]): (int(r.get("passed", 0)), int(r.get("failed", 0)))
            for r in run.get("per_testing_criteria_results") or []
        },
        prompt_tokens=sum(int(u.get("prompt_tokens", 0)) for u in usage),
        completion_tokens=sum(int(u.get("completion_tokens", 0)) for u in usage),
        total_tokens=sum(int(u.get("total_tokens", 0)) for u in usage),
        cost_usd=sum(float(u.get("cost_usd") or 0.0) for u in usage),
    )


def grader_names(summaries: list[RunSummary]) -> list[str]:
    names: list[str] = []
    for summary in summaries:
        names += [name for name in summary.graders if name not in names]
    return names


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def result_rows(summaries: list[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """The headings and, per model, its cells."""
    graders = grader_names(summaries)
    headings = ["model", "passed", "pass rate (95% CI)", *graders, "errored", "tokens", "cost $"]
    rows = []
    for s in summaries:
        low, high = s.interval
        name = s.label if s.status == "completed" else f"{s.label} ({s.status})"
        cells = [name, f"{s.passed}/{s.total}"]
        cells.append(f"{_percent(s.pass_rate)} [{_percent(low)}, {_percent(high)}]")
        for grader in graders:
            passed, failed = s.graders.get(grader, (0, 0))
            cells.append(_percent(passed / (passed + failed)) if passed + failed else "-")
        cells += [str(s.errored), f"{s.total_tokens:,}", f"{s.cost_usd:.6f}"]
        rows.append(cells)
    return headings, rows


def results_table(summaries: list[RunSummary], transposed: bool = False) -> Table:
    """A row per model; transposed (a column per model) when a row is too wide to read."""
    headings, rows = result_rows(summaries)
    table = Table()
    if transposed:
        table.add_column("")
        for cells in rows:
            table.add_column(cells[0], justify="right", overflow="fold")
        for index, heading in enumerate(headings[1:], 1):
            table.add_row(heading, *(cells[index] for cells in rows))
        return table
    table.add_column(headings[0])
    for heading in headings[1:]:
        table.add_column(heading, justify="right", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    return table


def print_results(console: Console, summaries: list[RunSummary]) -> None:
    table = results_table(summaries)
    natural = console.measure(table, options=console.options.update_width(100_000)).maximum
    if natural > console.width:
        table = results_table(summaries, transposed=True)
    console.print(table)


def below_threshold(summaries: list[RunSummary], minimum: float) -> list[RunSummary]:
    return [s for s in summaries if s.pass_rate < minimum]


def summary_json(summary: RunSummary) -> dict[str, Any]:
    low, high = summary.interval
    return {
        "model": summary.label,
        "run_id": summary.run_id,
        "status": summary.status,
        "error": summary.error,
        "result_counts": {
            "total": summary.total,
            "passed": summary.passed,
            "failed": summary.failed,
            "errored": summary.errored,
        },
        "pass_rate": summary.pass_rate,
        "pass_rate_ci95": [low, high],
        "graders": {
            name: {
                "passed": p,
                "failed": f,
                "pass_rate": p / (p + f) if p + f else None,
            }
            for name, (p, f) in summary.graders.items()
        },
        "usage": {
            "prompt_tokens": summary.prompt_tokens,
            "completion_tokens": summary.completion_tokens,
            "total_tokens": summary.total_tokens,
            "cost_usd": summary.cost_usd,
        },
    }
