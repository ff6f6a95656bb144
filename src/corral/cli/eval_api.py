"""``corral eval``'s client of the Evals API, and the progress it shows while runs go."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from corral.cli.eval_defs import TERMINAL, ServerError


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
