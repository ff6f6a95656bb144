"""``corral models`` and ``corral pull``: the catalog and the local model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.core.config import Settings

CatalogOption = Annotated[
    Path | None, typer.Option(help="Operator's catalog YAML (default: CORRAL_CATALOG).")
]
DataDirOption = Annotated[Path | None, typer.Option(help="Where corral writes.")]


def _settings(catalog: Path | None, data_dir: Path | None) -> Settings:
    base = Settings()
    update: dict[str, object] = {}
    if catalog is not None:
        update["catalog"] = catalog
    if data_dir is not None:
        update["data_dir"] = data_dir
    return base.model_copy(update=update)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def models(catalog: CatalogOption = None, data_dir: DataDirOption = None) -> None:
    """List the catalog's snapshots: state, aliases, and whether the weights are local."""
    from corral.services.catalog import CatalogError, load_catalog
    from corral.services.store import local_state

    settings = _settings(catalog, data_dir)
    try:
        cat = load_catalog(settings.catalog)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    today = cat.today()
    store = settings.data_dir / "models"
    typer.echo(f"{'snapshot':42} {'state':10} {'weights':10} {'size':>9}  aliases")
    for snap in sorted(cat.snapshots.values(), key=lambda s: (s.family.id, s.stages.released)):
        st = local_state(cat, snap, store)
        if st.local:
            where = "local"
        elif snap.source.kind == "hf":
            where = "pullable"
        elif snap.source.kind == "upstream":
            where = "upstream"
        else:
            where = "missing"
        size = f"{st.size / 2**30:.2f} GiB" if st.size else ""
        aliases = ", ".join(cat.aliases_of(snap.id))
        typer.echo(
            f"{snap.id:42} {snap.state(today) or 'upcoming':10} {where:10} {size:>9}  {aliases}"
        )


def pull(
    model: Annotated[str, typer.Argument(help="A snapshot id or an alias from the catalog.")],
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Download a snapshot's GGUF from the Hugging Face Hub into the model store."""
    from corral.services.catalog import CatalogError, load_catalog
    from corral.services.store import PullError
    from corral.services.store import pull as pull_model

    settings = _settings(catalog, data_dir)
    try:
        cat = load_catalog(settings.catalog)
        path = pull_model(cat, model, settings.data_dir / "models", progress=progress)
    except (CatalogError, PullError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{model}: {path}")
