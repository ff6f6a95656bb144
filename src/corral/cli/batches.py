"""``corral batch submit``: a JSONL file of requests sent as a batch from a shell, its
progress shown while it runs, its output written next to the input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from corral.cli.eval_api import Api
from corral.cli.eval_defs import ServerError
from corral.cli.evals import ApiKeyOption, EvalServerOption

batch_app = typer.Typer(help="Run a file of requests as a batch (the Batch API).")

FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def submit(api: Api, path: Path, endpoint: str) -> dict[str, Any]:
    with path.open("rb") as f:
        file = api.call("POST", "/files", data={"purpose": "batch"}, files={"file": (path.name, f)})
    body = {"input_file_id": file["id"], "endpoint": endpoint, "completion_window": "24h"}
    batch: dict[str, Any] = api.call("POST", "/batches", json=body)
    return batch


def follow(api: Api, batch: dict[str, Any], console: Console, poll: float) -> dict[str, Any]:
    """Poll until the batch ends, with a bar on a terminal (a line per change elsewhere);
    Ctrl-C cancels it and waits for what finished."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(batch["id"], total=batch["request_counts"]["total"])
        last: tuple[Any, ...] = ()
        while batch["status"] not in FINAL:
            try:
                time.sleep(poll)
            except KeyboardInterrupt:
                typer.echo("cancelling …", err=True)
                api.call("POST", f"/batches/{batch['id']}/cancel")
            batch = api.call("GET", f"/batches/{batch['id']}")
            counts = batch["request_counts"]
            progress.update(task, completed=counts["completed"] + counts["failed"])
            state = (batch["status"], counts["completed"], counts["failed"])
            if not console.is_terminal and state != last:
                typer.echo(f"{batch['id']}: {state[0]} {state[1] + state[2]}/{counts['total']}")
            last = state
    return batch


def download(api: Api, file_id: str | None, path: Path) -> Path | None:
    if file_id is None:
        return None
    response = api.http.get(f"/files/{file_id}/content")
    if response.status_code >= 400:
        raise ServerError(f"cannot read {file_id}: HTTP {response.status_code}")
    path.write_bytes(response.content)
    return path


@batch_app.command("submit")
def submit_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The JSONL file.")],
    endpoint: Annotated[str, typer.Option(help=f"One of {', '.join(ENDPOINTS)}.")],
    wait: Annotated[bool, typer.Option(help="Follow it to the end; write its output.")] = False,
    url: EvalServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 1.0,
) -> None:
    """Submit FILE as a batch; with --wait, show its progress and write its output and
    errors next to FILE (FILE.output.jsonl, FILE.errors.jsonl)."""
    api = Api(url, api_key)
    try:
        batch = submit(api, file, endpoint)
        typer.echo(f"{batch['id']}: {batch['status']}, {batch['request_counts']['total']} requests")
        if batch["status"] == "failed":
            for error in (batch.get("errors") or {}).get("data", []):
                typer.echo(f"  line {error.get('line')}: {error['message']}", err=True)
            raise typer.Exit(1)
        if not wait:
            return
        batch = follow(api, batch, Console(stderr=True), poll)
        stem = file.with_suffix("")
        out = download(api, batch.get("output_file_id"), stem.with_suffix(".output.jsonl"))
        err = download(api, batch.get("error_file_id"), stem.with_suffix(".errors.jsonl"))
    except ServerError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        api.close()
    counts = batch["request_counts"]
    typer.echo(
        f"{batch['id']}: {batch['status']}, {counts['completed']} ok, {counts['failed']} failed"
    )
    for written in (out, err):
        if written is not None:
            typer.echo(f"wrote {written}")
    if batch["status"] != "completed" or counts["failed"]:
        raise typer.Exit(1)
