"""The command line: ``corral serve`` and friends."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corral.cli.accounts import db_app, keys_app, projects_app, usage
from corral.cli.batches import batch_app
from corral.cli.evals import eval_app
from corral.cli.fine_tune import fine_tune_app
from corral.cli.models import pull
from corral.cli.promote import models_app
from corral.core.config import Settings
from corral.core.logs import configure as configure_logging

app = typer.Typer(help="corral: an OpenAI-compatible model API.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.command("pull")(pull)
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
app.add_typer(db_app, name="db")
app.command("usage")(usage)
app.add_typer(fine_tune_app, name="fine-tune")
app.add_typer(eval_app, name="eval")
app.add_typer(batch_app, name="batch")


@app.callback()
def main() -> None:
    """corral's commands."""


def _overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model loaded at start: a catalog name or a GGUF path.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where corral writes.")] = None,
    n_parallel: Annotated[int | None, typer.Option(help="Concurrent sequences.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="KV-cache size in tokens.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads.")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Operator's catalog YAML, over the shipped one.")
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    from corral.api.header_timeout import with_header_timeout
    from corral.app import create_app
    from corral.catalog.schema import CatalogError
    from corral.cli.serving import serve as serve_gracefully

    base = Settings()
    engine = base.engine.model_copy(
        update=_overrides(n_parallel=n_parallel, n_ctx=n_ctx, n_threads=threads)
    )
    settings = base.model_copy(
        update=_overrides(host=host, port=port, model=model, data_dir=data_dir, catalog=catalog)
        | {"engine": engine}
    )
    configure_logging(settings.log_level, settings.log_format)
    try:
        app_ = create_app(settings, worker=settings.fine_tuning.worker)
    except CatalogError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    serve_gracefully(
        app_,
        app_.state.services.drain,
        settings.shutdown_grace_s,
        host=settings.host,
        port=settings.port,
        http=with_header_timeout(settings.limits.header_timeout_s),
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers go through corral's handler (JSON, request ids)
    )


@app.command()
def worker() -> None:
    """Run the training worker (``corral serve`` starts one; run more on other hosts)."""
    from corral.tuning.worker import main as run_worker

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    run_worker(settings)


@app.command()
def settings() -> None:
    """Print the configuration reference (the source of docs/configuration.md)."""
    from corral.core.settings_docs import settings_markdown

    typer.echo(settings_markdown(), nl=False)


@app.command()
def bench(
    url: Annotated[str, typer.Option(help="Base URL of the API, e.g. http://127.0.0.1:8000/v1")],
    model: Annotated[str, typer.Option(help="Model name to request.")],
    concurrency: Annotated[str, typer.Option(help="Comma-separated levels.")] = "1,2,4,8,16",
    max_tokens: Annotated[int, typer.Option(help="Output tokens per request.")] = 64,
    api_key: Annotated[str | None, typer.Option(envvar="OPENAI_API_KEY")] = None,
    long: Annotated[bool, typer.Option(help="~1,000-token prompts instead of short.")] = False,
    ignore_eos: Annotated[bool, typer.Option(help="Send ignore_eos (llama.cpp, vLLM).")] = True,
) -> None:
    """Drive any OpenAI-compatible endpoint with concurrent streaming chat requests."""
    import asyncio

    from corral.bench.loadgen import Target, percentile, run_level
    from corral.bench.prompts import long_prompts, short_prompts

    prompts = long_prompts(8, seed=2) if long else short_prompts(64, seed=1)
    target = Target(url.rstrip("/"), model, api_key, {"ignore_eos": True} if ignore_eos else {})
    typer.echo("conc  req  err  ttft_p50  ttft_p99  itl_p50  itl_p99   tok/s   req/s")
    for level in (int(c) for c in concurrency.split(",")):
        requests = max(6, 2 * level)
        r = asyncio.run(run_level(target, prompts, level, requests, max_tokens, ignore_eos))
        ms = 1000
        typer.echo(
            f"{level:>4} {requests:>4} {r.errors:>4} {percentile(r.ttfts, 50) * ms:>9.1f} "
            f"{percentile(r.ttfts, 99) * ms:>9.1f} {percentile(r.itls, 50) * ms:>8.1f} "
            f"{percentile(r.itls, 99) * ms:>8.1f} {r.tokens_per_s:>7.1f} {r.requests_per_s:>7.2f}"
        )
