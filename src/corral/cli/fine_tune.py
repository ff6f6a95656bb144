"""``corral fine-tune create/follow``: a fine-tuning job through the HTTP API, with a
progress bar and a loss curve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

fine_tune_app = typer.Typer(help="Fine-tune a model through a corral server.")

UrlOption = Annotated[
    str, typer.Option(envvar="OPENAI_BASE_URL", help="The API's base URL (…/v1).")
]
KeyOption = Annotated[str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key.")]
PlotOption = Annotated[
    Path | None, typer.Option(help="Write the loss curve here (.png needs matplotlib; or .svg).")
]
TERMINAL = ("succeeded", "failed", "cancelled")


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60.0)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    return response.json()


def _upload(http: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        data = _check(
            http.post("/files", data={"purpose": "fine-tune"}, files={"file": (path.name, f)})
        )
    return str(data["id"])


@fine_tune_app.command("create")
def create(
    training_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option(help="Base model (snapshot or alias).")],
    validation_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Validation JSONL.")
    ] = None,
    suffix: Annotated[str | None, typer.Option(help="Part of the fine-tune's name.")] = None,
    epochs: Annotated[int | None, typer.Option(help="n_epochs (default auto).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch_size (default auto).")] = None,
    learning_rate_multiplier: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    follow: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    plot: PlotOption = None,
    url: UrlOption = "http://127.0.0.1:8000/v1",
    api_key: KeyOption = None,
) -> None:
    """Upload the files and start a job (then follow it)."""
    with _client(url, api_key) as http:
        body: dict[str, Any] = {"model": model, "training_file": _upload(http, training_file)}
        if validation_file is not None:
            body["validation_file"] = _upload(http, validation_file)
        hyper = {
            k: v
            for k, v in (
                ("n_epochs", epochs),
                ("batch_size", batch_size),
                ("learning_rate_multiplier", learning_rate_multiplier),
            )
            if v is not None
        }
        if hyper:
            body["hyperparameters"] = hyper
        if suffix is not None:
            body["suffix"] = suffix
        if seed is not None:
            body["seed"] = seed
        job = _check(http.post("/fine_tuning/jobs", json=body))
        typer.echo(f"{job['id']}: {job['status']}")
        if follow:
            _follow(http, job["id"], plot)


@fine_tune_app.command("follow")
def follow_job(
    job_id: str,
    plot: PlotOption = None,
    url: UrlOption = "http://127.0.0.1:8000/v1",
    api_key: KeyOption = None,
) -> None:
    """Show a job's progress until it ends, then its result and loss curve."""
    with _client(url, api_key) as http:
        _follow(http, job_id, plot)


def _metrics(http: httpx.Client, job_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    events: list[dict[str, Any]] = []
    after: str | None = None
    while True:  # events come newest first, 1000 a page
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        page = _check(http.get(f"/fine_tuning/jobs/{job_id}/events", params=params))
        events += page["data"]
        if not page["has_more"] or not page["data"]:
            break
        after = page["data"][-1]["id"]
    events.reverse()
    metrics = [e["data"] for e in events if e.get("type") == "metrics" and e.get("data")]
    messages = [e["message"] for e in events if e.get("type") != "metrics"]
    return metrics, messages


def _follow(http: httpx.Client, job_id: str, plot: Path | None) -> None:
    shown_messages = 0
    done_steps = 0
    bar: Any = None
    while True:
        job = _check(http.get(f"/fine_tuning/jobs/{job_id}"))
        metrics, messages = _metrics(http, job_id)
        for message in messages[shown_messages:]:
            if bar is None:
                typer.echo(f"  {message}")
        shown_messages = len(messages)
        if metrics:
            last = metrics[-1]
            if bar is None:
                bar = typer.progressbar(length=int(last["total_steps"]), label="training")
                bar.__enter__()
            steps = max(int(m["step"]) for m in metrics)
            if steps > done_steps:
                bar.label = (
                    f"loss {last['train_loss']:.4f}  {last['tokens_per_s']:.0f} tok/s  "
                    f"eta {last['eta_s']:.0f}s"
                )
                bar.update(steps - done_steps)
                done_steps = steps
        if job["status"] in TERMINAL:
            break
        time.sleep(1.0)
    if bar is not None:
        bar.__exit__(None, None, None)
    for message in messages[-3:]:
        typer.echo(f"  {message}")
    typer.echo(f"{job_id}: {job['status']}")
    if job.get("fine_tuned_model"):
        typer.echo(f"model: {job['fine_tuned_model']}")
    if job.get("error"):
        typer.secho(f"error: {job['error']['message']}", err=True, fg=typer.colors.RED)
    if plot is not None and metrics:
        written = write_loss_curve(metrics, plot)
        typer.echo(f"loss curve: {written}")
    if job["status"] != "succeeded":
        raise typer.Exit(1)


def write_loss_curve(metrics: list[dict[str, Any]], path: Path) -> Path:
    """PNG with matplotlib when it is installed; otherwise (or for .svg) a plain SVG."""
    steps = [int(m["step"]) for m in metrics]
    train = [float(m["train_loss"]) for m in metrics]
    valid = [(int(m["step"]), float(m["valid_loss"])) for m in metrics if m.get("valid_loss")]
    if path.suffix == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            path = path.with_suffix(".svg")
        else:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot(steps, train, label="training loss")
            if valid:
                ax.plot([s for s, _ in valid], [v for _, v in valid], "o-", label="validation")
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            ax.legend()
            fig.tight_layout()
            fig.savefig(path)
            plt.close(fig)
            return path
    width, height, pad = 600, 300, 30
    top = max(train + [v for _, v in valid]) or 1.0
    last = max(steps) or 1

    def points(series: list[tuple[int, float]]) -> str:
        return " ".join(
            f"{pad + (width - 2 * pad) * s / last:.1f},"
            f"{height - pad - (height - 2 * pad) * v / top:.1f}"
            for s, v in series
        )

    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" '
        f'points="{points(list(zip(steps, train, strict=True)))}"/>'
        f'<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="{points(valid)}"/>'
        f'<text x="{pad}" y="20" font-family="sans-serif" font-size="12">loss (max '
        f"{top:.3f}) over {last} steps: training (blue), validation (orange)</text></svg>"
    )
    return path
