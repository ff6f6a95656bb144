"""BFCL results as `make eval-bfcl` keeps them, on made-up answers (the run itself needs
a server and the `bfcl-eval` package)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from corral.bench.bfcl import (
    BEGIN,
    END,
    EXCERPT,
    Outcome,
    answer_shape,
    dumps,
    excerpt,
    merge,
    overall,
    render,
    replace_section,
    run_key,
    summarize,
)


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_call_repeated_with_the_same_arguments_in_another_order_is_a_repeat() -> None:
    shape = answer_shape(
        {
            "content": None,
            "tool_calls": [call("f", '{"a": 1, "b": 2}'), call("f", '{"b":2,"a":1}')],
        }
    )
    assert (shape.calls, shape.repeated, shape.empty, shape.text) == (2, True, False, False)


def test_two_calls_that_differ_are_not_a_repeat() -> None:
    message = {"tool_calls": [call("f", '{"a": 1}'), call("f", '{"a": 2}'), call("g", '{"a": 1}')]}
    assert not answer_shape(message).repeated


def test_unparsable_arguments_compare_as_text() -> None:
    assert answer_shape({"tool_calls": [call("f", "{oops"), call("f", "{oops")]}).repeated
    assert not answer_shape({"tool_calls": [call("f", "{oops"), call("f", "{oops}")]}).repeated


def test_an_answer_with_no_text_and_no_call_is_empty() -> None:
    for message in ({"content": None}, {"content": "  \n"}, {"content": "", "tool_calls": []}):
        shape = answer_shape(message)
        assert shape.empty and not shape.text and shape.calls == 0
    assert not answer_shape({"content": "Paris."}).empty
    assert not answer_shape({"tool_calls": [call("f", "{}")]}).empty


def test_excerpt_shows_calls_then_text_and_is_bounded() -> None:
    message = {"content": "done", "tool_calls": [call("f", '{"a": 1}')]}
    assert excerpt(message) == 'f({"a": 1}) done'
    long = excerpt({"content": "x" * 1000})
    assert len(long) == EXCERPT and long.endswith("…")


def outcome(passed: bool, calls: int = 1, **kw: Any) -> Outcome:
    fields: dict[str, Any] = {"error": None if passed else "wrong_count", "repeated": False}
    fields |= {"empty": False, "output": ""} | kw
    return Outcome("x", passed, calls=calls, **fields)


def test_summarize_counts_what_the_issue_tracks() -> None:
    got = summarize(
        [
            outcome(True),
            outcome(False, calls=2, repeated=True),
            outcome(False, calls=0, empty=True),
            outcome(False, calls=0, error="request: ReadTimeout"),
        ]
    )
    assert got == {
        "total": 4,
        "passed": 1,
        "answers_with_calls": 2,
        "calls": 3,
        "repeated": 1,
        "empty": 1,
        "request_errors": 1,
        "failures": {"wrong_count": 2, "request: ReadTimeout": 1},
    }


def test_overall_is_the_mean_of_category_rates_not_of_items() -> None:
    categories = {"a": {"passed": 1, "total": 1}, "b": {"passed": 0, "total": 99}}
    assert overall(categories) == 0.5
    assert overall({}) is None


def result(passed: int, total: int = 4) -> dict[str, Any]:
    counts = summarize([outcome(i < passed) for i in range(total)])
    meta = {"model": "m", "commit": "abc1234", "seconds": 12.0, "max_tokens": 512}
    return {"meta": meta, "categories": {"simple": counts, "irrelevance": counts}, "items": {}}


def test_merge_keeps_other_labels_and_the_other_target() -> None:
    doc = merge({}, run_key("before", None), None, "corral", result(1))
    doc = merge(doc, run_key("before", None), None, "engine", result(2))
    doc = merge(doc, run_key("after", 25), 25, "corral", result(3))
    doc2 = merge(doc, run_key("before", None), None, "corral", result(4))
    assert list(doc2["runs"]) == ["before", "after (first 25 per category)"]
    before = doc2["runs"]["before"]["targets"]
    assert before["corral"]["categories"]["simple"]["passed"] == 4
    assert before["engine"]["categories"]["simple"]["passed"] == 2
    assert doc["runs"]["before"]["targets"]["corral"]["categories"]["simple"]["passed"] == 1


def test_a_label_that_already_names_its_limit_is_kept() -> None:
    assert run_key("after", 50) == "after (first 50 per category)"
    assert run_key("after (first 50 per category)", 50) == "after (first 50 per category)"
    assert run_key("after", None) == "after"


def test_render_has_a_row_per_category_and_the_overall_mean() -> None:
    doc = merge({}, "before", None, "corral", result(1))
    doc = merge(doc, "before", None, "engine", result(4))
    text = render(doc)
    assert "| simple | 4 | 1/4 (25%) | 4/4 (100%) | 4 · 0 · 0 | 4 · 0 · 0 |" in text
    assert "| **overall** |  | **25%** | **100%** | 8 · 0 · 0 | 8 · 0 · 0 |" in text
    assert "**before**" in text and "abc1234" in text


def test_render_a_run_of_one_target() -> None:
    text = render(merge({}, "after", None, "engine", result(2)))
    assert "engine alone: passed" in text and "corral: passed" not in text


def test_replace_section_keeps_the_rest_of_the_page() -> None:
    page = f"# Evals\n\nintro\n\n{BEGIN}\nold\n{END}\n\n## Next\n"
    new = replace_section(page, "new table")
    assert new == f"# Evals\n\nintro\n\n{BEGIN}\nnew table\n{END}\n\n## Next\n"
    assert replace_section("# Evals\n", "t").endswith(f"{BEGIN}\nt\n{END}\n")


def test_the_results_file_is_json_with_an_answer_a_line() -> None:
    with_items = result(1)
    with_items["items"] = {
        "simple": [asdict(outcome(True)), asdict(outcome(False, output='a "quoted"\nline'))],
        "irrelevance": [],
    }
    doc = merge({}, "before", None, "corral", with_items)
    text = dumps(doc)
    assert json.loads(text) == doc
    assert sum(line.startswith('{"id": "x"') for line in text.splitlines()) == 2


def test_a_run_stopped_before_its_last_category_says_partial() -> None:
    partial = result(1)
    partial["meta"]["planned"] = ["simple", "multiple", "parallel", "irrelevance"]
    text = render(merge({}, "before", None, "corral", partial))
    assert "partial: 2 of 4 categories" in text
    assert "partial" not in render(merge({}, "before", None, "corral", result(1)))


def test_a_run_of_some_categories_adds_to_the_row_set() -> None:
    first = result(1)
    later = result(3)
    later["categories"] = {"multiple": later["categories"]["simple"]}
    later["meta"] = {**later["meta"], "commit": "def5678", "seconds": 3.0}
    doc = merge(merge({}, "after", None, "corral", first), "after", None, "corral", later)
    joined = doc["runs"]["after"]["targets"]["corral"]
    assert set(joined["categories"]) == {"simple", "irrelevance", "multiple"}
    assert joined["meta"]["commit"] == "abc1234, def5678" and joined["meta"]["seconds"] == 15.0
    # Another token cap is another measurement: it replaces the row set.
    other = {**later, "meta": {**later["meta"], "max_tokens": 64}}
    doc = merge(doc, "after", None, "corral", other)
    assert set(doc["runs"]["after"]["targets"]["corral"]["categories"]) == {"multiple"}
