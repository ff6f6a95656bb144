"""``corral models promote ALIAS SNAPSHOT [--require-eval NAME]`` and ``corral models
unpin ALIAS``: operators move an alias ahead of the catalog's dates, gated on an eval.

The move is a row in the database (services.aliases); every server on that database
follows it within a few seconds. With ``--require-eval`` the eval runs on a live server
against the alias's current snapshot and the candidate side by side, and the alias
moves only if the candidate's pass rate is not lower than the current one's by more
than ``--tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from corral.cli.evals import ApiKeyOption, EvalServerOption
from corral.cli.models import (
    CatalogOption,
    DataDirOption,
    KeyOption,
    ServerOption,
    _settings,
    models,
)
from corral.core.config import Settings

if TYPE_CHECKING:
    from corral.catalog.schema import Catalog

models_app = typer.Typer(help="The model catalog; `promote` and `unpin` move aliases.")


@models_app.callback(invoke_without_command=True)
def models_main(
    ctx: typer.Context,
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
    url: ServerOption = None,
    api_key: KeyOption = None,
) -> None:
    """List the catalog's snapshots (state, aliases, local weights) and upstream pools;
    `corral models promote` / `unpin` move an alias."""
    if ctx.invoked_subcommand is None:
        models(catalog, data_dir, url, api_key)


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def judge(current: float, candidate: float, tolerance: float) -> Verdict:
    """Not worse than the current snapshot beyond the tolerance (pass rates in [0, 1])."""
    margin = candidate - current
    text = (
        f"pass rate {candidate:.1%} vs {current:.1%} now ({margin:+.1%}, tolerance {tolerance:.1%})"
    )
    if margin >= -tolerance - 1e-12:
        return Verdict(True, text)
    return Verdict(False, text)


def _catalog(settings: Settings) -> Catalog:
    from corral.catalog.aliases import read_pins
    from corral.catalog.schema import load_catalog
    from corral.storage.db import upgrade

    upgrade(settings.db_url)
    catalog = load_catalog(settings.catalog)
    catalog.pins = read_pins(settings.db_url)
    return catalog


def _eval_gate(
    name: str,
    models: tuple[str, str],
    directory: Path,
    url: str,
    api_key: str | None,
    limit: int | None,
    tolerance: float,
) -> Verdict:
    """Run the eval on both snapshots at once and compare their pass rates."""
    from rich.console import Console

    from corral.cli.eval_api import Api
    from corral.cli.eval_defs import (
        EvalError,
        ServerError,
        eval_directory,
        load_eval,
        parse_variants,
    )
    from corral.cli.eval_results import print_results, summarize
    from corral.cli.evals import execute_runs

    try:
        loaded = load_eval(eval_directory(directory, name))
    except EvalError as exc:
        raise _fail(str(exc), 2) from None
    variants = parse_variants(list(models))
    items = loaded.items[:limit] if limit else loaded.items
    api = Api(url, api_key)
    try:
        _, runs = execute_runs(api, loaded, variants, items, 1.0, 3600.0)
    except ServerError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        api.close()
    summaries = [summarize(v.label, runs[v.label]) for v in variants]
    print_results(Console(), summaries)
    if any(s.status != "completed" for s in summaries):
        raise _fail("an eval run did not complete; the alias stays where it is", 1)
    now, candidate = summaries
    return judge(now.pass_rate, candidate.pass_rate, tolerance)


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def promote(
    alias: Annotated[str, typer.Argument(help="The alias to move, e.g. llama3.1-8b.")],
    snapshot: Annotated[str, typer.Argument(help="The snapshot it should point to.")],
    require_eval: Annotated[
        str | None,
        typer.Option(help="An eval (under --evals-dir) the snapshot must not do worse on."),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="How much lower a pass rate may be.")
    ] = 0.02,
    evals_dir: Annotated[
        Path, typer.Option(envvar="CORRAL_EVALS_DIR", help="Where the evals are.")
    ] = Path("evals"),
    url: EvalServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the move).")] = "",
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Point ALIAS at SNAPSHOT from now on, on every server sharing the database."""
    from corral.catalog.aliases import with_pins
    from corral.catalog.schema import CatalogError

    settings = _settings(catalog, data_dir)
    try:
        cat = _catalog(settings)
    except CatalogError as exc:
        raise _fail(str(exc), 1) from None
    refused = cat.pinnable(alias, snapshot)
    if refused is not None:
        raise _fail(refused, 2)
    current = cat.target(alias)
    if current is not None and current.id == snapshot:
        typer.echo(f"{alias} already points to {snapshot}")
        return
    note = reason
    if require_eval is not None and current is not None:
        verdict = _eval_gate(
            require_eval, (current.id, snapshot), evals_dir, url, api_key, limit, tolerance
        )
        typer.echo(f"{require_eval}: {snapshot} {verdict.reason}")
        if not verdict.promote:
            raise _fail(f"{alias} stays on {current.id}: {snapshot} did worse on {require_eval}", 1)
        note = f"{reason} [{require_eval}: {verdict.reason}]".strip()

    previous = with_pins(settings.db_url, lambda pins: pins.pin(cat, alias, snapshot, note))
    typer.echo(f"{alias} → {snapshot} (was {previous or 'nothing'}); servers follow within seconds")


def unpin(
    alias: Annotated[str, typer.Argument(help="The alias to hand back to the catalog's dates.")],
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Undo a promotion: the alias follows the catalog's dates again."""
    from corral.catalog.aliases import with_pins
    from corral.storage.db import upgrade

    settings = _settings(catalog, data_dir)
    upgrade(settings.db_url)

    if not with_pins(settings.db_url, lambda pins: pins.unpin(alias)):
        raise _fail(f"{alias} was not promoted", 1)
    typer.echo(f"{alias} follows the catalog's dates again")


models_app.command("promote")(promote)
models_app.command("unpin")(unpin)
