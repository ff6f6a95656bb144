"""The command line: ``corral serve`` and friends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from corral.core.config import Settings

app = typer.Typer(help="corral: an OpenAI-compatible model API.", no_args_is_help=True)


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
        str | None, typer.Option(help="The embedded model's id or a path to a GGUF file.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where corral writes.")] = None,
    n_parallel: Annotated[int | None, typer.Option(help="Concurrent sequences.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="KV-cache size in tokens.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads.")] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    from corral.api.app import create_app

    base = Settings()
    engine = base.engine.model_copy(
        update=_overrides(n_parallel=n_parallel, n_ctx=n_ctx, n_threads=threads)
    )
    settings = base.model_copy(
        update=_overrides(host=host, port=port, model=model, data_dir=data_dir) | {"engine": engine}
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )


@app.command()
def settings() -> None:
    """Print the configuration reference (the source of docs/configuration.md)."""
    from corral.core.settings_docs import settings_markdown

    typer.echo(settings_markdown(), nl=False)
