"""BFCL results as `make eval-bfcl` keeps them (benchmarks/bfcl.py runs it): what one
answer looks like (calls, a call repeated, empty), a category's counts, the results file
with a row set per label, and the markdown section of docs/evals.md. Pure, so it is
tested without a server or the `bfcl-eval` package."""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

BEGIN = "<!-- bfcl:start -->"
END = "<!-- bfcl:end -->"
# Our name for each category -> BFCL's (its data file is BFCL_v4_<name>.json).
CATEGORIES = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "irrelevance": "irrelevance",
}
TARGETS = {"corral": "corral", "engine": "engine alone"}
EXCERPT = 160  # characters of each answer kept in the results file
NONE = "n/a"  # a cell with no result


@dataclass(frozen=True)
class Shape:
    calls: int  # tool calls in the answer
    repeated: bool  # some call appears twice with the same name and arguments
    empty: bool  # no text and no call
    text: bool  # the answer has text (besides whitespace)


def _canonical(arguments: Any) -> str:
    """Arguments compared as JSON values when they parse (key order and spacing aside)."""
    if isinstance(arguments, str):
        try:
            return json.dumps(json.loads(arguments), sort_keys=True)
        except json.JSONDecodeError:
            return arguments
    return json.dumps(arguments, sort_keys=True)


def answer_shape(message: dict[str, Any]) -> Shape:
    """The counts of one chat completion message (``choices[0].message``)."""
    calls = message.get("tool_calls") or []
    seen = [
        (c.get("function", {}).get("name"), _canonical(c.get("function", {}).get("arguments")))
        for c in calls
    ]
    text = bool((message.get("content") or "").strip())
    return Shape(len(calls), len(set(seen)) < len(seen), not text and not calls, text)


def excerpt(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls") or []
    shown = [f"{c['function'].get('name')}({c['function'].get('arguments')})" for c in calls]
    text = (message.get("content") or "").strip()
    out = " ".join([*shown, text] if text else shown)
    return out if len(out) <= EXCERPT else out[: EXCERPT - 1] + "…"


@dataclass
class Outcome:
    id: str
    passed: bool
    error: str | None  # BFCL's error type, or the request's failure
    calls: int
    repeated: bool
    empty: bool
    output: str


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """One category's counts as the JSON keeps them."""
    failures = Counter(o.error for o in outcomes if not o.passed and o.error)
    return {
        "total": len(outcomes),
        "passed": sum(o.passed for o in outcomes),
        "answers_with_calls": sum(o.calls > 0 for o in outcomes),
        "calls": sum(o.calls for o in outcomes),
        "repeated": sum(o.repeated for o in outcomes),
        "empty": sum(o.empty for o in outcomes),
        "request_errors": sum((o.error or "").startswith("request:") for o in outcomes),
        "failures": dict(failures.most_common()),
    }


def run_key(label: str, limit: int | None) -> str:
    """Runs are kept per label; a --limit run is its own row set beside the whole one
    (named once, if the label already says it)."""
    scope = f"(first {limit} per category)"
    return label if limit is None or label.endswith(scope) else f"{label} {scope}"


def merge(
    document: dict[str, Any], key: str, limit: int | None, target: str, result: dict[str, Any]
) -> dict[str, Any]:
    """The results file with one target's run put under ``key``; other keys and the other
    target of the same key are kept, and so are the categories this run did not measure
    when the earlier one ran on the same model and token cap (a run of one category adds
    to its row set)."""
    out = copy.deepcopy(document) if document else {}
    out.setdefault("runs", {})
    run = out["runs"].setdefault(key, {"limit": limit, "targets": {}})
    run["limit"] = limit
    earlier = run["targets"].get(target)
    run["targets"][target] = _joined(earlier, result) if earlier else result
    return out


def _joined(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    same = ("model", "max_tokens")
    if any(earlier["meta"].get(k) != later["meta"].get(k) for k in same):
        return later
    meta = dict(later["meta"])
    commits = [earlier["meta"].get("commit"), later["meta"].get("commit")]
    meta["commit"] = ", ".join(dict.fromkeys(c for c in commits if c))
    meta["seconds"] = round(earlier["meta"].get("seconds", 0) + meta.get("seconds", 0), 1)
    categories = {**earlier["categories"], **later["categories"]}
    items = {**earlier.get("items", {}), **later.get("items", {})}
    return {**later, "meta": meta, "categories": categories, "items": items}


def _pct(passed: int, total: int) -> str:
    return f"{passed}/{total} ({100 * passed / total:.0f}%)" if total else NONE


def _counts(c: dict[str, Any]) -> str:
    return f"{c['calls']} · {c['repeated']} · {c['empty']}"


def overall(categories: dict[str, dict[str, Any]]) -> float | None:
    """BFCL's way: the mean of the categories' pass rates, not of all items."""
    rates = [c["passed"] / c["total"] for c in categories.values() if c["total"]]
    return sum(rates) / len(rates) if rates else None


def _meta(title: str, result: dict[str, Any]) -> str:
    meta = result["meta"]
    done, planned = len(result["categories"]), len(meta.get("planned") or result["categories"])
    partial = f", partial: {done} of {planned} categories" if done < planned else ""
    threads = f", {meta['engine_threads']} engine thread(s)" if meta.get("engine_threads") else ""
    return (
        f"{title}: {meta['model']} at {meta['commit']}, {meta['seconds']:.0f} s, "
        f"max_tokens {meta['max_tokens']}{threads}{partial}"
    )


def render(document: dict[str, Any]) -> str:
    """The markdown section: a table per run key, a row per category."""
    lines = [
        "### BFCL on corral and on the engine alone (`make eval-bfcl`)",
        "",
        "BFCL's own data, tool conversion and checkers (`bfcl-eval` "
        f"{document.get('bfcl_eval', '?')}: `simple` = simple_python, `multiple`, "
        "`parallel` by its AST checker; `irrelevance` passes when no call is decoded), each "
        "item sent once with `tool_choice: auto`, temperature 0. *corral*: `corral serve`; "
        "*engine alone*: llama.cpp's own listener on the same model (`engine_direct.py`). "
        "Overall is the mean of the category rates. Beside each target: tool calls made · "
        "answers that repeat a call identically · empty answers (no text, no call). Every "
        "answer, shortened, is in `docs/evals-bfcl.json`.",
    ]
    for key, run in document.get("runs", {}).items():
        targets = run["targets"]
        names = [t for t in TARGETS if t in targets]
        meta = "; ".join(_meta(TARGETS[t], targets[t]) for t in names)
        lines += ["", f"**{key}** ({meta})", ""]
        head = ["category", "items"]
        head += [f"{TARGETS[t]}: passed" for t in names]
        head += [f"{TARGETS[t]}: calls · repeated · empty" for t in names]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        categories = [c for c in CATEGORIES if any(c in targets[t]["categories"] for t in names)]
        for cat in categories:
            got = [targets[t]["categories"].get(cat) for t in names]
            total = next(g["total"] for g in got if g)
            row = [cat, str(total)]
            row += [_pct(g["passed"], g["total"]) if g else NONE for g in got]
            row += [_counts(g) if g else NONE for g in got]
            lines.append("| " + " | ".join(row) + " |")
        row = ["**overall**", ""]
        for t in names:
            mean = overall(targets[t]["categories"])
            row.append(NONE if mean is None else f"**{100 * mean:.0f}%**")
        for t in names:
            sums = {
                k: sum(c[k] for c in targets[t]["categories"].values())
                for k in ("calls", "repeated", "empty")
            }
            row.append(_counts(sums))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def dumps(document: dict[str, Any]) -> str:
    """The results file as JSON, one answer a line (some two thousand of them in a run of
    whole categories on both targets): short, and a rerun's diff reads item by item."""
    doc = copy.deepcopy(document)
    rows: dict[str, list[Any]] = {}
    for run in doc.get("runs", {}).values():
        for result in run.get("targets", {}).values():
            items = result.get("items", {})
            for category, outcomes in items.items():
                marker = f"@rows{len(rows)}@"
                rows[marker] = outcomes
                items[category] = marker
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    for marker, outcomes in rows.items():
        lines = ",\n".join(json.dumps(o, ensure_ascii=False) for o in outcomes)
        text = text.replace(json.dumps(marker), f"[\n{lines}\n]" if outcomes else "[]", 1)
    return text + "\n"


def replace_section(doc: str, section: str) -> str:
    """``doc`` with the text between the bfcl markers replaced (appended with its markers
    when it has none); the rest of the page stays as it is."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return doc.rstrip() + "\n\n" + block + "\n"
