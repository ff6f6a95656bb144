"""``corral eval list/run``: the evals in ``evals/NAME/`` (eval.yaml + data.jsonl) run
through a corral server's Evals API against one or more models, compared in one table.

Everything here is a client of the HTTP API (as a CI job or another machine would be): the
server does the sampling and the grading; ``eval_defs`` loads and checks definitions,
``eval_api`` talks to the server and shows progress, ``eval_results`` turns run objects
into a table, a JSON result and an exit code.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.eval_api import Api, cancel_unfinished, reporter, wait_for_runs
from corral.cli.eval_defs import (
    EvalError,
    LoadedEval,
    ModelVariant,
    ServerError,
    discover,
    eval_body,
    eval_directory,
    load_eval,
    parse_variants,
    run_body,
)
from corral.cli.eval_results import (
    RunSummary,
    below_threshold,
    print_results,
    summarize,
    summary_json,
)

eval_app = typer.Typer(
    help="Run the repository's evals against models served by corral.", no_args_is_help=True
)


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
