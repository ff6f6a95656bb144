"""``corral eval``: the shipped evals, definition checks, statistics and the run command
(against a fake Evals API, and once against a live server)."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from rich.console import Console
from typer.testing import CliRunner

from corral.cli import evals as cli_eval
from corral.cli.app import app
from corral.cli.eval_api import BarReporter, reporter
from corral.cli.eval_defs import (
    EvalError,
    ModelVariant,
    eval_directory,
    load_eval,
    parse_variant,
    parse_variants,
    run_body,
)
from corral.cli.eval_results import (
    below_threshold,
    print_results,
    results_table,
    summarize,
    wilson_interval,
)
from tests.conftest import MODEL, LiveServer

EVALS = Path(__file__).resolve().parents[2] / "evals"
SHIPPED = sorted(p.parent.name for p in EVALS.glob("*/eval.yaml"))
runner = CliRunner()
# The command reads these; a developer's shell must not change what the tests see.
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(
    ["CORRAL_URL", "CORRAL_API_KEY", "OPENAI_API_KEY", "CORRAL_EVALS_DIR"]
)


# --- the shipped evals ---------------------------------------------------------------------


def test_four_evals_ship_with_different_graders() -> None:
    assert {"arithmetic", "json-schema", "tool-selection", "multilingual"} <= set(SHIPPED)
    types = {
        g["type"] for name in SHIPPED for g in load_eval(EVALS / name).definition.testing_criteria
    }
    assert {"string_check", "text_similarity"} <= types


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_eval_is_valid(name: str) -> None:
    ev = load_eval(EVALS / name)
    assert 10 <= len(ev.items) <= 50
    assert ev.definition.description
    schema = ev.definition.data_source_config["item_schema"]
    for item in ev.items:
        jsonschema.validate(item, schema)
    messages = ev.definition.input_messages
    if messages["type"] == "template":
        assert any("{{item." in m["content"] for m in messages["template"])
    else:  # each item holds its conversation
        field = messages["item_reference"].removeprefix("item.")
        assert all(isinstance(item[field], list) and item[field] for item in ev.items)


def test_tool_selection_items_name_offered_tools() -> None:
    ev = load_eval(EVALS / "tool-selection")
    offered = {t["function"]["name"] for t in ev.definition.sampling_params["tools"]}
    assert len(offered) == 3
    assert {item["tool"] for item in ev.items} == offered


def test_tool_use_categories_and_calls_name_offered_tools() -> None:
    ev = load_eval(EVALS / "tool-use")
    offered = {t["function"]["name"] for t in ev.definition.sampling_params["tools"]}
    categories = Counter(item["category"] for item in ev.items)
    assert set(categories) == {"single", "choice", "parallel", "irrelevance", "results"}
    assert len(ev.items) >= 40 and min(categories.values()) >= 8
    for item in ev.items:
        calls = item["calls"].split(",") if item["calls"] else []
        assert calls == sorted(calls) and set(calls) <= offered  # as output_tool_names has them
        expected = {"parallel": 2, "irrelevance": 0, "results": 0}.get(item["category"], 1)
        assert len(calls) == expected, item
        if item["category"] == "results":  # the call, its result, and a fact of it to say
            assistant, tool = item["messages"][-2:]
            assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"]
            assert item["answer"] and item["answer"] in tool["content"].replace("07:30", "7:30")


def test_tool_use_data_is_what_its_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_data", EVALS / "tool-use" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.items() == load_eval(EVALS / "tool-use").items


def test_json_schema_items_fit_the_response_schema() -> None:
    ev = load_eval(EVALS / "json-schema")
    response_format = ev.definition.sampling_params["response_format"]
    schema = response_format["json_schema"]["schema"]
    for item in ev.items:
        jsonschema.validate({k: item[k] for k in schema["required"]}, schema)


def test_list_shows_every_eval() -> None:
    result = runner.invoke(app, ["eval", "list", "--dir", str(EVALS)])
    assert result.exit_code == 0, result.output
    for name in SHIPPED:
        assert name in result.stdout
    assert "string_check" in result.stdout


# --- definitions ---------------------------------------------------------------------------

ARITHMETIC = {
    "name": "sums",
    "description": "Sums.",
    "data_source_config": {
        "type": "custom",
        "include_sample_schema": True,
        "item_schema": {
            "type": "object",
            "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["question", "answer"],
        },
    },
    "testing_criteria": [
        {
            "type": "string_check",
            "name": "contains answer",
            "input": "{{sample.output_text}}",
            "reference": "{{item.answer}}",
            "operation": "like",
        }
    ],
    "input_messages": {
        "type": "template",
        "template": [{"role": "user", "content": "{{item.question}}"}],
    },
    "sampling_params": {"temperature": 0, "seed": 1, "max_completion_tokens": 8},
}
ITEMS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 9)]


def write_eval(
    root: Path,
    name: str = "sums",
    definition: dict[str, Any] | None = None,
    lines: list[str] | None = None,
) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    body = {**ARITHMETIC, "name": name} if definition is None else definition
    (directory / "eval.yaml").write_text(json.dumps(body))  # JSON is YAML
    rows = lines if lines is not None else [json.dumps({"item": i}) for i in ITEMS]
    (directory / "data.jsonl").write_text("\n".join(rows) + "\n")
    return directory


def test_load_eval_reads_definition_and_items(tmp_path: Path) -> None:
    ev = load_eval(write_eval(tmp_path))
    assert ev.name == "sums"
    assert ev.items == ITEMS
    assert ev.definition.data == "data.jsonl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "other"}, "must be the directory's name"),
        ({"testing_criteria": []}, "testing_criteria"),
        ({"surprise": 1}, "surprise"),
        ({"data": "../../etc/passwd"}, "must be a file in"),
        ({"data": "/etc/passwd"}, "must be a file in"),
        ({"data": "missing.jsonl"}, "missing.jsonl"),
        (
            {"testing_criteria": [ARITHMETIC["testing_criteria"][0]] * 2},  # type: ignore[index]
            "used twice",
        ),
        ({"testing_criteria": [{"type": "string_check"}]}, "needs a type and a name"),
        (
            {
                "input_messages": {
                    "type": "template",
                    "template": [{"role": "user", "content": "{{item.nope}}"}],
                }
            },
            "{{item.nope}} is not in the item_schema",
        ),
    ],
)
def test_bad_definitions_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    directory = write_eval(tmp_path, definition={**ARITHMETIC, **change})
    with pytest.raises(EvalError, match=re.escape(message)):
        load_eval(directory)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"item": {"question": "q", "answer": "a"}}', "{oops"], "data.jsonl:2: not JSON"),
        (['{"question": "q", "answer": "a"}'], 'data.jsonl:1: expected {"item"'),
        (['{"item": {"question": "q"}}'], "data.jsonl:1: missing ['answer']"),
        ([""], "no items"),
    ],
)
def test_bad_data_lines_are_named(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(EvalError, match=re.escape(message)):
        load_eval(write_eval(tmp_path, lines=lines))


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    directory = write_eval(tmp_path)
    (directory / "eval.yaml").write_text("- a list\n")
    with pytest.raises(EvalError, match="expected a mapping"):
        load_eval(directory)


@pytest.mark.parametrize("name", ["../sums", "/etc", ".hidden", "a/b", "", "..", "sums/.."])
def test_eval_names_cannot_leave_the_directory(tmp_path: Path, name: str) -> None:
    write_eval(tmp_path / "evals")
    with pytest.raises(EvalError, match="is not an eval name"):
        eval_directory(tmp_path / "evals", name)


def test_unknown_eval_lists_the_known_ones(tmp_path: Path) -> None:
    write_eval(tmp_path)
    with pytest.raises(EvalError, match=r"no eval 'nope' .*there are: sums"):
        eval_directory(tmp_path, "nope")


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = write_eval(tmp_path / "outside")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "sums").symlink_to(outside)
    with pytest.raises(EvalError, match="leads outside"):
        eval_directory(tmp_path / "evals", "sums")


def test_list_reports_broken_evals_and_exits_1(tmp_path: Path) -> None:
    write_eval(tmp_path)
    write_eval(tmp_path, "broken", lines=["{oops"])
    result = runner.invoke(app, ["eval", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "sums" in result.stdout and "invalid" in result.stdout
    assert "data.jsonl:1: not JSON" in result.stderr


# --- variants, statistics, tables ----------------------------------------------------------


def test_parse_variant() -> None:
    assert parse_variant("m") == ModelVariant("m", "m", {})
    variant = parse_variant("ft:m:org:x@temperature=1.2, seed=3")
    assert variant.model == "ft:m:org:x"
    assert variant.overrides == {"temperature": 1.2, "seed": 3}
    assert variant.label == "ft:m:org:x@temperature=1.2, seed=3"


@pytest.mark.parametrize(
    "spec", ["m@", "@temperature=1", "m@temp=1", "m@seed=1.5", "m@temperature", "m@top_p="]
)
def test_bad_variants(spec: str) -> None:
    with pytest.raises(EvalError, match="--model"):
        parse_variant(spec)


def test_the_same_model_twice_is_refused() -> None:
    with pytest.raises(EvalError, match="given twice: m"):
        parse_variants(["m", "m@seed=2", "m"])


def test_run_body_overrides_sampling_params(tmp_path: Path) -> None:
    ev = load_eval(write_eval(tmp_path))
    body = run_body(ev, parse_variant("m@temperature=1.5"), ev.items[:2])
    source = body["data_source"]
    assert source["model"] == "m"
    assert source["sampling_params"] == {"temperature": 1.5, "seed": 1, "max_completion_tokens": 8}
    assert source["source"] == {"type": "file_content", "content": [{"item": i} for i in ITEMS[:2]]}
    assert source["input_messages"] == ARITHMETIC["input_messages"]
    assert ev.definition.sampling_params["temperature"] == 0  # the definition is untouched


@pytest.mark.parametrize(
    ("passed", "total", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval(passed: int, total: int, low: float, high: float) -> None:
    got = wilson_interval(passed, total)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_contains_the_rate() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for total in (1, 6, 25, 400):
        for passed in range(total + 1):
            low, high = wilson_interval(passed, total)
            assert 0.0 <= low <= passed / total <= high <= 1.0
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < 0.2


def run_object(
    model: str, passed: int, failed: int, errored: int = 0, status: str = "completed"
) -> dict[str, Any]:
    total = passed + failed + errored
    return {
        "object": "eval.run",
        "id": f"evalrun_{model}",
        "model": model,
        "status": status,
        "error": None if status == "completed" else {"code": "x", "message": "engine gone"},
        "result_counts": {"total": total, "passed": passed, "failed": failed, "errored": errored},
        "per_testing_criteria_results": [
            {"testing_criteria": "contains answer", "passed": passed, "failed": failed}
        ],
        "per_model_usage": [
            {
                "model_name": model,
                "invocation_count": total,
                "prompt_tokens": 10 * total,
                "completion_tokens": 2 * total,
                "total_tokens": 12 * total,
                "cached_tokens": 0,
                "cost_usd": 0.0001 * total,
            }
        ],
    }


def test_summarize_and_table() -> None:
    a = summarize("a", run_object("a", 5, 1))
    b = summarize("b@temperature=1.5", run_object("b", 2, 3, errored=1))
    assert (a.total, a.passed, a.pass_rate) == (6, 5, 5 / 6)
    assert b.pass_rate == 2 / 6  # errored items count against the rate
    assert b.graders == {"contains answer": (2, 3)}
    assert (b.total_tokens, b.cost_usd) == (72, pytest.approx(0.0006))
    table = render(results_table([a, b]))
    assert "contains answer" in table and "b@temperature=1.5" in table
    assert "83% [44%, 97%]" in table  # 5/6 with its Wilson interval
    assert "40%" in table  # b's grader: 2 of the 5 it graded


def test_below_threshold() -> None:
    a = summarize("a", run_object("a", 5, 1))
    b = summarize("b", run_object("b", 3, 3))
    assert below_threshold([a, b], 0.5) == []
    assert below_threshold([a, b], 0.6) == [b]
    assert below_threshold([a, b], 0.9) == [a, b]


def render(table: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    return out.getvalue()


# --- `corral eval run` against a fake Evals API ---------------------------------------------


class FakeEvalsApi:
    """Enough of /v1/evals for the command: runs finish on their second poll; model "good"
    passes everything, any other model passes every other item."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.fail_create: dict[str, Any] | None = None
        self.mode = "normal"  # or "never_done", "fail", "interrupt"
        self.canceled: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/v1/evals":
            if self.fail_create:
                return httpx.Response(400, json={"error": self.fail_create})
            return httpx.Response(200, json={"object": "eval", "id": "eval_1"})
        if request.method == "POST" and path == "/v1/evals/eval_1/runs":
            body = json.loads(request.content)
            run_id = f"evalrun_{len(self.runs) + 1}"
            self.bodies[run_id] = body
            self.runs[run_id] = {"id": run_id, "status": "queued", "result_counts": {}}
            return httpx.Response(200, json=self.runs[run_id])
        if match := re.fullmatch(r"/v1/evals/eval_1/runs/(\w+)/cancel", path):
            self.canceled.append(match.group(1))
            return httpx.Response(200, json={**self.runs[match.group(1)], "status": "canceled"})
        if match := re.fullmatch(r"/v1/evals/eval_1/runs/(\w+)", path):
            return httpx.Response(200, json=self.poll(match.group(1)))
        if match := re.fullmatch(r"/v1/evals/eval_1/runs/(\w+)/output_items", path):
            return httpx.Response(200, json=self.page(match.group(1), request))
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def outcomes(self, run_id: str) -> list[bool]:
        source = self.bodies[run_id]["data_source"]
        n = len(source["source"]["content"])
        return [source["model"] == "good" or i % 2 == 0 for i in range(n)]

    def poll(self, run_id: str) -> dict[str, Any]:
        self.polls[run_id] = self.polls.get(run_id, 0) + 1
        outcomes = self.outcomes(run_id)
        done = outcomes if self.polls[run_id] > 1 else outcomes[: len(outcomes) // 2]
        passed = sum(done)
        run = run_object("x", passed, len(done) - passed)
        run["id"] = run_id
        run["result_counts"]["total"] = len(outcomes)
        run["status"] = "completed" if self.polls[run_id] > 1 else "in_progress"
        if self.mode == "never_done":
            run["status"] = "in_progress"
        elif self.mode == "interrupt" and self.polls[run_id] > 1:
            raise KeyboardInterrupt
        elif self.mode == "fail" and self.polls[run_id] > 1:
            run["status"] = "failed"
            run["error"] = {"code": "model_not_found", "message": "no model 'weak'"}
        return run

    def page(self, run_id: str, request: httpx.Request) -> dict[str, Any]:
        # Two items a page whatever the limit, so the command must follow `after`.
        items = [
            {
                "object": "eval.run.output_item",
                "id": f"outputitem_{i}",
                "datasource_item_id": i,
                "status": "pass" if ok else "fail",
                "results": [{"name": "contains answer", "passed": ok, "score": float(ok)}],
            }
            for i, ok in enumerate(self.outcomes(run_id))
        ]
        after = request.url.params.get("after")
        start = 0 if after is None else int(after.rsplit("_", 1)[1]) + 1
        return {
            "object": "list",
            "data": items[start : start + 2],
            "has_more": start + 2 < len(items),
        }


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> FakeEvalsApi:
    fake = FakeEvalsApi()
    real = cli_eval.Api

    def api(url: str, api_key: str | None) -> cli_eval.Api:
        return real(url, api_key, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(cli_eval, "Api", api)
    return fake


def invoke_run(root: Path, *args: str) -> Any:
    return runner.invoke(
        app, ["eval", "run", "sums", "--dir", str(root), "--poll", "0.1", *args], env=CLEAN_ENV
    )


def test_run_compares_models_and_writes_json(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    out = tmp_path / "out" / "result.json"
    result = invoke_run(
        tmp_path, "-m", "good", "-m", "weak@temperature=1.5", "--limit", "6", "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "good" in result.stdout and "weak@temperature=1.5" in result.stdout
    assert "100% [61%, 100%]" in result.stdout and "50% [19%, 81%]" in result.stdout
    assert "in_progress 3/6" in result.stderr  # a progress line per change
    document = json.loads(out.read_text())
    assert document["eval"] == "sums" and document["items"] == 6
    weak = document["runs"][1]
    assert weak["model"] == "weak@temperature=1.5" and weak["model_name"] == "weak"
    assert weak["sampling_params"]["temperature"] == 1.5
    assert weak["result_counts"] == {"total": 6, "passed": 3, "failed": 3, "errored": 0}
    assert [i["datasource_item_id"] for i in weak["output_items"]] == list(range(6))
    bodies = list(fake_api.bodies.values())
    assert [b["data_source"]["model"] for b in bodies] == ["good", "weak"]
    assert len(bodies[0]["data_source"]["source"]["content"]) == 6


def test_min_pass_rate_fails_and_names_the_model(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    out = tmp_path / "r.json"
    result = invoke_run(
        tmp_path, "-m", "good", "-m", "weak", "--min-pass-rate", "0.75", "--output", str(out)
    )
    assert result.exit_code == 1
    assert "weak: pass rate 0.500 (4/8) is below --min-pass-rate 0.75" in result.stderr
    assert "good: pass rate" not in result.stderr
    assert out.exists()  # the result is written before the verdict


def test_server_errors_are_shown_in_its_words(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    fake_api.fail_create = {
        "message": "unknown grader type 'regex'",
        "type": "invalid_request_error",
        "param": "testing_criteria[0].type",
        "code": None,
    }
    result = invoke_run(tmp_path, "-m", "good")
    assert result.exit_code == 1
    assert "error: unknown grader type 'regex' (param: testing_criteria[0].type)" in result.stderr


def test_api_key_is_sent(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    out = str(tmp_path / "r.json")
    result = invoke_run(tmp_path, "-m", "good", "--api-key", "sk-test", "--output", out)
    assert result.exit_code == 0, result.output
    assert all(r.headers["authorization"] == "Bearer sk-test" for r in fake_api.requests)


def test_an_unreachable_server(tmp_path: Path) -> None:
    write_eval(tmp_path)
    result = invoke_run(tmp_path, "-m", "m", "--url", "http://127.0.0.1:1")
    assert result.exit_code == 1
    assert "cannot reach corral at http://127.0.0.1:1/v1" in result.stderr


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    write_eval(tmp_path)
    result = invoke_run(tmp_path, "-m", "m@temp=2")
    assert result.exit_code == 2
    assert "'temp=2' is not key=value" in result.stderr


def test_a_failed_run_exits_1_with_its_error(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    fake_api.mode = "fail"
    result = invoke_run(tmp_path, "-m", "weak", "--output", str(tmp_path / "r.json"))
    assert result.exit_code == 1
    assert "weak (failed)" in result.stdout
    assert "weak: run failed: no model 'weak'" in result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["status"] == "failed"


def test_ctrl_c_cancels_the_runs(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    fake_api.mode = "interrupt"
    result = invoke_run(tmp_path, "-m", "good", "-m", "weak")
    assert result.exit_code == 130
    assert fake_api.canceled == ["evalrun_1", "evalrun_2"]
    assert "interrupted" in result.stderr


def test_timeout_cancels_the_runs(tmp_path: Path, fake_api: FakeEvalsApi) -> None:
    write_eval(tmp_path)
    fake_api.mode = "never_done"
    result = invoke_run(tmp_path, "-m", "good", "--timeout", "1")
    assert result.exit_code == 1
    assert fake_api.canceled == ["evalrun_1"]
    assert "did not end within 1s" in result.stderr


def test_a_narrow_terminal_gets_a_column_per_model() -> None:
    summaries = [
        summarize("a-long-model-name@temperature=1.5", run_object("a", 5, 1)),
        summarize("another-long-model-name@seed=3", run_object("b", 2, 4)),
    ]
    out = io.StringIO()
    print_results(Console(file=out, width=70), summaries)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 70
    assert any(line.startswith("│ pass rate (95% CI)") for line in lines)
    wide = io.StringIO()
    print_results(Console(file=wide, width=200), summaries)
    assert any(
        line.startswith("│ a-long-model-name@temperature=1.5")
        for line in wide.getvalue().splitlines()
    )


def test_progress_bars_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with reporter(console) as report:
        assert isinstance(report, BarReporter)
        report.update("m", {"status": "queued", "result_counts": {}})
        report.update("m", run_object("m", 2, 1, status="in_progress"))
    assert "3/3" in out.getvalue() and "in_progress" in out.getvalue()


# --- end to end: a live server -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_against_a_live_server(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    variant = f"{MODEL}@temperature=1.5"
    args = ["--model", MODEL, "--model", variant, "--limit", "6", "--output", str(out)]
    result = runner.invoke(
        app,
        ["eval", "run", "arithmetic", "--dir", str(EVALS), "--url", live_server.url, *args],
        env=CLEAN_ENV,
    )
    print(result.stdout, result.stderr)
    assert result.exit_code == 0, result.output
    assert MODEL in result.stdout and variant in result.stdout
    assert "pass rate (95% CI)" in result.stdout and "contains answer" in result.stdout
    document = json.loads(out.read_text())
    assert document["items"] == 6
    for run, label in zip(document["runs"], [MODEL, variant], strict=True):
        counts = run["result_counts"]
        assert run["model"] == label and run["status"] == "completed"
        assert counts["total"] == 6
        assert counts["passed"] + counts["failed"] + counts["errored"] == 6
        assert len(run["output_items"]) == 6
        assert run["usage"]["total_tokens"] > 0
        low, high = run["pass_rate_ci95"]
        assert low <= run["pass_rate"] <= high
    assert document["runs"][1]["sampling_params"]["temperature"] == 1.5
