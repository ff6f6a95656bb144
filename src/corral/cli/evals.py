"""``corral eval list/run``: the evals in ``evals/NAME/`` (eval.yaml + data.jsonl) run
through a corral server's Evals API against one or more models, compared in one table.

Everything here is a client of the HTTP API (as a CI job or another machine would be): the
server does the sampling and the grading; this module loads and checks definitions, polls,
and turns run objects into a table, a JSON result and an exit code.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

eval_app = typer.Typer(
    help="Run the repository's evals against models served by corral.", no_args_is_help=True
)

EVAL_FILE = "eval.yaml"
# A plain directory name: no separators, no leading dot, so NAME can never leave --dir.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ITEM_REFERENCE = re.compile(r"\{\{\s*item\.([A-Za-z_][A-Za-z0-9_-]*)")
# What `--model NAME@key=value` may override, and how each value is read.
VARIANT_KEYS: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "seed": int,
    "max_completion_tokens": int,
    "reasoning_effort": str,
}
TERMINAL = frozenset({"completed", "failed", "canceled"})
Z_95 = 1.959963984540054


class EvalError(Exception):
    """A problem the user can fix: a bad definition, argument or path. Exit code 2."""


class ServerError(Exception):
    """The server said no, or could not be reached. Exit code 1."""


# --- definitions ---------------------------------------------------------------------------


class EvalDefinition(BaseModel):
    """``eval.yaml``: the API's eval and run bodies, minus the model, plus the data file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]] = Field(min_length=1)
    input_messages: dict[str, Any]
    sampling_params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = "data.jsonl"


@dataclass(frozen=True)
class LoadedEval:
    definition: EvalDefinition
    items: list[dict[str, Any]]
    directory: Path

    @property
    def name(self) -> str:
        return self.definition.name


def eval_directory(root: Path, name: str) -> Path:
    """The directory of eval NAME under ``root``, refusing anything but a plain name."""
    if not NAME.fullmatch(name):
        raise EvalError(
            f"{name!r} is not an eval name: it must be a directory name under {root} "
            "(letters, digits, '.', '_', '-')"
        )
    directory = root / name
    if not (directory / EVAL_FILE).is_file():
        known = ", ".join(sorted(p.parent.name for p in root.glob(f"*/{EVAL_FILE}")))
        raise EvalError(f"no eval {name!r} in {root}" + (f" (there are: {known})" if known else ""))
    if not directory.resolve().is_relative_to(root.resolve()):
        raise EvalError(f"{directory} leads outside {root}")
    return directory


def load_eval(directory: Path) -> LoadedEval:
    """Read and check one eval directory; every problem is an EvalError naming the file."""
    path = directory / EVAL_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise EvalError(f"{path}: expected a mapping of eval fields")
    try:
        definition = EvalDefinition.model_validate(raw)
    except ValidationError as exc:
        raise EvalError(f"{path}: {_first_error(exc)}") from None
    if definition.name != directory.name:
        raise EvalError(f"{path}: name {definition.name!r} must be the directory's name")
    _check_graders(path, definition.testing_criteria)
    items = _read_items(directory, definition.data)
    _check_items(path, definition, items)
    return LoadedEval(definition, items, directory)


def discover(root: Path) -> list[tuple[str, LoadedEval | EvalError]]:
    """Every eval directory under ``root``, loaded, or the reason it cannot be."""
    if not root.is_dir():
        raise EvalError(f"no evals directory at {root} (see --dir or CORRAL_EVALS_DIR)")
    found: list[tuple[str, LoadedEval | EvalError]] = []
    for path in sorted(root.glob(f"*/{EVAL_FILE}")):
        try:
            found.append((path.parent.name, load_eval(path.parent)))
        except EvalError as exc:
            found.append((path.parent.name, exc))
    return found


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _check_graders(path: Path, graders: list[dict[str, Any]]) -> None:
    # Results come back per grader name, so two graders with one name would merge.
    names: set[str] = set()
    for index, grader in enumerate(graders):
        name = grader.get("name")
        if not isinstance(grader.get("type"), str) or not isinstance(name, str) or not name:
            raise EvalError(f"{path}: testing_criteria[{index}] needs a type and a name")
        if name in names:
            raise EvalError(f"{path}: testing_criteria[{index}]: name {name!r} is used twice")
        names.add(name)


def _read_items(directory: Path, data: str) -> list[dict[str, Any]]:
    path = directory / data
    if Path(data).is_absolute() or not path.resolve().is_relative_to(directory.resolve()):
        raise EvalError(f"{directory / EVAL_FILE}: data {data!r} must be a file in {directory}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: {exc.strerror or exc}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("item"), dict):
            raise EvalError(f'{path}:{number}: expected {{"item": {{...}}}}')
        items.append(row["item"])
    if not items:
        raise EvalError(f"{path}: no items")
    return items


def _check_items(path: Path, definition: EvalDefinition, items: list[dict[str, Any]]) -> None:
    """What can be checked without the server: required fields, and templates that name
    fields the items have (the server checks the rest, with ``param``)."""
    schema = definition.data_source_config.get("item_schema") or {}
    required = schema.get("required") or []
    for number, item in enumerate(items, 1):
        missing = [key for key in required if key not in item]
        if missing:
            raise EvalError(f"{path.parent / definition.data}:{number}: missing {missing}")
    properties = schema.get("properties")
    if isinstance(properties, dict):
        templates = json.dumps([definition.testing_criteria, definition.input_messages])
        for field_name in ITEM_REFERENCE.findall(templates):
            if field_name not in properties:
                raise EvalError(f"{path}: {{{{item.{field_name}}}}} is not in the item_schema")


# --- models and variants -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVariant:
    """``--model NAME`` or ``--model NAME@temperature=1.2,seed=3``."""

    label: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_variant(spec: str) -> ModelVariant:
    model, at, settings = spec.partition("@")
    if not model.strip() or (at and not settings.strip()):
        raise EvalError(f"--model {spec!r}: expected NAME or NAME@key=value,key=value")
    overrides: dict[str, Any] = {}
    for pair in settings.split(",") if settings else []:
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or key not in VARIANT_KEYS or not value:
            keys = ", ".join(VARIANT_KEYS)
            raise EvalError(f"--model {spec!r}: {pair!r} is not key=value with a key in {keys}")
        try:
            overrides[key] = VARIANT_KEYS[key](value)
        except ValueError:
            kind = VARIANT_KEYS[key].__name__
            raise EvalError(f"--model {spec!r}: {key} must be a {kind}") from None
    return ModelVariant(spec, model.strip(), overrides)


def parse_variants(specs: list[str]) -> list[ModelVariant]:
    variants = [parse_variant(spec) for spec in specs]
    labels = [v.label for v in variants]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise EvalError(f"--model given twice: {', '.join(twice)}")
    return variants


# --- request bodies ------------------------------------------------------------------------


def eval_body(ev: LoadedEval) -> dict[str, Any]:
    d = ev.definition
    return {
        "name": d.name,
        "data_source_config": d.data_source_config,
        "testing_criteria": d.testing_criteria,
        "metadata": {**d.metadata, "corral_eval": d.name},
    }


def run_body(ev: LoadedEval, variant: ModelVariant, items: list[dict[str, Any]]) -> dict[str, Any]:
    d = ev.definition
    return {
        "name": f"{d.name} {variant.label}",
        "metadata": {"variant": variant.label},
        "data_source": {
            "type": "completions",
            "model": variant.model,
            "input_messages": d.input_messages,
            "sampling_params": {**d.sampling_params, **variant.overrides},
            "source": {"type": "file_content", "content": [{"item": i} for i in items]},
        },
    }


# --- results -------------------------------------------------------------------------------


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


# --- the HTTP API ------------------------------------------------------------------------------


def api_base(url: str) -> str:
    """Accept both the server's root and its /v1 (OPENAI_BASE_URL's form)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class Api:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = api_base(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach corral at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ServerError(error_message(response))
        return response.json()

    def output_items(self, eval_id: str, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.call("GET", f"/evals/{eval_id}/runs/{run_id}/output_items", params=params)
            items += page["data"]
            if not page.get("has_more") or not page["data"]:
                break
            params["after"] = page["data"][-1]["id"]
        return sorted(items, key=lambda item: int(item.get("datasource_item_id", 0)))


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's error object, naming the field when it says."""
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:500]}"
    param = error.get("param")
    return f"{message} (param: {param})" if param else message


# --- progress --------------------------------------------------------------------------------


class Reporter(Protocol):
    def update(self, label: str, run: dict[str, Any]) -> None: ...


class LineReporter:
    """One line per change on stderr: what a CI log keeps readable."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Any, ...]] = {}

    def update(self, label: str, run: dict[str, Any]) -> None:
        counts = run.get("result_counts") or {}
        state = (run.get("status"), *(counts.get(k, 0) for k in ("passed", "failed", "errored")))
        if self.last.get(label) == state:
            return
        self.last[label] = state
        done = sum(state[1:])
        typer.echo(
            f"{label}: {state[0]} {done}/{counts.get('total', 0)} "
            f"(passed {state[1]}, failed {state[2]}, errored {state[3]})",
            err=True,
        )


class BarReporter:
    """A progress bar per model on a terminal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def update(self, label: str, run: dict[str, Any]) -> None:
        counts = run.get("result_counts") or {}
        done = sum(int(counts.get(k, 0)) for k in ("passed", "failed", "errored"))
        total = int(counts.get("total", 0)) or None
        status = str(run.get("status"))
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total, status=status)
        self.progress.update(self.tasks[label], completed=done, total=total, status=status)


@contextmanager
def reporter(console: Console) -> Iterator[Reporter]:
    if not console.is_terminal:
        yield LineReporter()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console) as progress:
        yield BarReporter(progress)


def wait_for_runs(
    api: Api,
    eval_id: str,
    runs: dict[str, dict[str, Any]],
    report: Reporter,
    poll_s: float,
    deadline: float,
) -> dict[str, dict[str, Any]]:
    """Poll every unfinished run until all have ended; the runs by label."""
    while True:
        for label, run in list(runs.items()):
            if run["status"] not in TERMINAL:
                runs[label] = api.call("GET", f"/evals/{eval_id}/runs/{run['id']}")
            report.update(label, runs[label])
        if all(run["status"] in TERMINAL for run in runs.values()):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(poll_s)


def cancel_unfinished(api: Api, eval_id: str, runs: dict[str, dict[str, Any]]) -> None:
    for run in runs.values():
        if run["status"] not in TERMINAL:
            # Best effort on the way out: a run that cannot be canceled ends on its own.
            with suppress(ServerError):
                api.call("POST", f"/evals/{eval_id}/runs/{run['id']}/cancel")


# --- commands --------------------------------------------------------------------------------

EvalServerOption = Annotated[
    str, typer.Option(envvar="CORRAL_URL", help="The corral server (its root or …/v1).")
]
ApiKeyOption = Annotated[
    str | None, typer.Option(envvar=["CORRAL_API_KEY", "OPENAI_API_KEY"], help="API key.")
]
DirOption = Annotated[
    Path,
    typer.Option(
        "--dir", envvar="CORRAL_EVALS_DIR", help="Where the evals are (one directory each)."
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _describe_graders(graders: list[dict[str, Any]]) -> str:
    types = [str(g.get("type")) for g in graders]
    return ", ".join(
        f"{t} x{types.count(t)}" if types.count(t) > 1 else t for t in dict.fromkeys(types)
    )


@eval_app.command("list")
def list_evals(directory: DirOption = Path("evals")) -> None:
    """The evals under --dir: name, items, graders, description (exit 1 if one is broken)."""
    try:
        found = discover(directory)
    except EvalError as exc:
        raise _fail(str(exc), 2) from None
    table = Table()
    for heading in ("name", "items", "graders", "description"):
        table.add_column(heading, justify="right" if heading == "items" else "left")
    broken = []
    for name, loaded in found:
        if isinstance(loaded, EvalError):
            broken.append(str(loaded))
            table.add_row(name, "-", "-", "[red]invalid[/red]")
            continue
        d = loaded.definition
        graders = _describe_graders(d.testing_criteria)
        table.add_row(name, str(len(loaded.items)), graders, d.description)
    _stdout().print(table)
    for message in broken:
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    if broken:
        raise typer.Exit(1)


@eval_app.command("run")
def run_eval(
    name: Annotated[str, typer.Argument(help="The eval: a directory name under --dir.")],
    models: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="A model to run it against (repeat to compare); "
            "NAME@temperature=1.2,seed=3 overrides the eval's sampling_params.",
        ),
    ],
    directory: DirOption = Path("evals"),
    url: EvalServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Run only the first N items.")] = None,
    min_pass_rate: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Exit 1 if a model's pass rate is below this."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="The JSON result (default ./eval-results/NAME-TIMESTAMP.json)."),
    ] = None,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 1.0,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Give up (and cancel the runs) after this many seconds.")
    ] = 3600.0,
) -> None:
    """Run an eval against one or more models; print them side by side, write JSON."""
    try:
        loaded = load_eval(eval_directory(directory, name))
        variants = parse_variants(models)
    except EvalError as exc:
        raise _fail(str(exc), 2) from None
    items = loaded.items[:limit] if limit else loaded.items
    started = datetime.now(UTC)
    api = Api(url, api_key)
    try:
        eval_id, runs = execute_runs(api, loaded, variants, items, poll, timeout)
        outputs = {label: api.output_items(eval_id, run["id"]) for label, run in runs.items()}
    except ServerError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        api.close()
    summaries = [summarize(v.label, runs[v.label]) for v in variants]
    stdout = _stdout()
    stdout.print(
        f"{loaded.name}: {len(items)} items, eval {eval_id}", markup=False, highlight=False
    )
    print_results(stdout, summaries)
    document = result_document(loaded, variants, eval_id, api.url, summaries, outputs, started)
    document["items"] = len(items)
    path = output or Path("eval-results") / f"{loaded.name}-{started:%Y%m%dT%H%M%SZ}.json"
    _write_json(path, document)
    typer.echo(f"result: {path}", err=True)
    _exit_for(summaries, min_pass_rate)


def execute_runs(
    api: Api,
    loaded: LoadedEval,
    variants: list[ModelVariant],
    items: list[dict[str, Any]],
    poll: float,
    timeout: float,
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Create the eval and a run per variant (all at once: the server runs them side by
    side), then follow them; Ctrl-C or the timeout cancels what is still going."""
    eval_id = str(api.call("POST", "/evals", json=eval_body(loaded))["id"])
    runs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        for variant in variants:
            body = run_body(loaded, variant, items)
            runs[variant.label] = api.call("POST", f"/evals/{eval_id}/runs", json=body)
        with reporter(Console(stderr=True)) as report:
            wait_for_runs(api, eval_id, runs, report, poll, deadline)
    except KeyboardInterrupt:
        cancel_unfinished(api, eval_id, runs)
        raise _fail("interrupted: the runs still going were canceled", 130) from None
    except TimeoutError:
        cancel_unfinished(api, eval_id, runs)
        raise _fail(f"the runs did not end within {timeout:.0f}s and were canceled", 1) from None
    except ServerError:
        cancel_unfinished(api, eval_id, runs)
        raise
    return eval_id, runs


def result_document(
    loaded: LoadedEval,
    variants: list[ModelVariant],
    eval_id: str,
    url: str,
    summaries: list[RunSummary],
    outputs: dict[str, list[dict[str, Any]]],
    started: datetime,
) -> dict[str, Any]:
    d = loaded.definition
    runs = []
    for variant, summary in zip(variants, summaries, strict=True):
        runs.append(
            {
                **summary_json(summary),
                "model_name": variant.model,
                "sampling_params": {**d.sampling_params, **variant.overrides},
                "output_items": outputs.get(variant.label, []),
            }
        )
    return {
        "eval": d.name,
        "description": d.description,
        "eval_id": eval_id,
        "url": url,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "testing_criteria": d.testing_criteria,
        "runs": runs,
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _exit_for(summaries: list[RunSummary], min_pass_rate: float | None) -> None:
    code = 0
    for s in summaries:
        if s.status != "completed":
            typer.secho(f"{s.label}: run {s.status}: {s.error or 'no reason given'}", err=True)
            code = 1
    if min_pass_rate is not None:
        for s in below_threshold(summaries, min_pass_rate):
            typer.secho(
                f"{s.label}: pass rate {s.pass_rate:.3f} ({s.passed}/{s.total}) is below "
                f"--min-pass-rate {min_pass_rate}",
                err=True,
                fg=typer.colors.RED,
            )
            code = 1
    if code:
        raise typer.Exit(code)


def _stdout() -> Console:
    # Off a terminal (CI logs, pipes) rich would squeeze the table into 80 columns.
    console = Console()
    return console if console.is_terminal else Console(width=200)
