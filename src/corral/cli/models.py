"""``corral models`` and ``corral pull``: the catalog and the local model store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from corral.core.config import Settings

if TYPE_CHECKING:
    from corral.catalog.schema import Catalog

CatalogOption = Annotated[
    Path | None, typer.Option(help="Operator's catalog YAML (default: CORRAL_CATALOG).")
]
DataDirOption = Annotated[Path | None, typer.Option(help="Where corral writes.")]
ServerOption = Annotated[
    str | None,
    typer.Option(
        envvar="OPENAI_BASE_URL",
        help="A running server (…/v1) to ask for its replicas' state (default: the "
        "configured host and port).",
    ),
]
KeyOption = Annotated[
    str | None, typer.Option(envvar="OPENAI_API_KEY", help="Key for the server's /metrics.")
]
# The series /metrics exposes per replica (services.registry.PoolCollector).
REPLICA_SERIES = {
    "corral_upstream_healthy": "healthy",
    "corral_upstream_ejected": "ejected",
    "corral_upstream_outstanding": "outstanding",
    "corral_upstream_failures": "failures",
    "corral_upstream_served_total": "served",
}


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


def models(
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
    url: ServerOption = None,
    api_key: KeyOption = None,
) -> None:
    """List the catalog's snapshots: state, aliases, and whether the weights are local;
    then the upstream pools, with each replica's state when the server answers."""
    from corral.catalog.aliases import read_pins
    from corral.catalog.schema import CatalogError, load_catalog
    from corral.catalog.store import local_state

    settings = _settings(catalog, data_dir)
    try:
        cat = load_catalog(settings.catalog)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    cat.pins = read_pins(settings.db_url)  # aliases as the servers resolve them now
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
    server = (url or _default_url(settings)).rstrip("/")
    key = api_key or (settings.admin_key.get_secret_value() if settings.admin_key else None)
    _show_pools(cat, server, live_replicas(server, key))


def _default_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}/v1"


def live_replicas(url: str, key: str | None) -> dict[tuple[str, str], dict[str, float]] | None:
    """Each replica's state by (model, replica URL), from the server's /metrics; None
    when no corral server answers there."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    metrics_url = url.removesuffix("/v1") + "/metrics"
    try:
        response = httpx.get(metrics_url, headers=headers, timeout=2.0)
        families = list(text_string_to_metric_families(response.text))
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code != 200:
        return None
    replicas: dict[tuple[str, str], dict[str, float]] = {}
    for family in families:
        for sample in family.samples:
            field = REPLICA_SERIES.get(sample.name)
            if field is not None:
                where = (sample.labels["model"], sample.labels["url"])
                replicas.setdefault(where, {})[field] = sample.value
    return replicas


def _replica_state(state: dict[str, float]) -> str:
    if state.get("ejected"):
        return "ejected"
    return "healthy" if state.get("healthy") else "down"


def _show_pools(
    cat: Catalog, server: str, live: dict[tuple[str, str], dict[str, float]] | None
) -> None:
    from corral.engines.pool import Replica

    configured = [s for s in cat.snapshots.values() if s.source.upstream is not None]
    if live is None:
        if configured:
            typer.echo(f"\nupstream pools (configured; no server answers at {server}):")
        for snap in configured:
            source = snap.source.upstream
            assert source is not None
            urls = [Replica(u).public_url for u in source.pool_urls]
            where = urls or [f"launched by corral, {source.replicas} replica(s)"]
            for replica in where:
                typer.echo(f"  {snap.id:42} {replica}")
        return
    if not live:
        return
    typer.echo(f"\nreplicas (live, from {server}):")
    typer.echo(f"  {'model':42} {'state':8} {'out':>4} {'served':>7} {'fails':>5}  url")
    for (model, replica), state in sorted(live.items()):
        typer.echo(
            f"  {model:42} {_replica_state(state):8} {state.get('outstanding', 0):>4.0f} "
            f"{state.get('served', 0):>7.0f} {state.get('failures', 0):>5.0f}  {replica}"
        )


def pull(
    model: Annotated[str, typer.Argument(help="A snapshot id or an alias from the catalog.")],
    catalog: CatalogOption = None,
    data_dir: DataDirOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Download a snapshot's GGUF from the Hugging Face Hub into the model store."""
    from corral.catalog.schema import CatalogError, load_catalog
    from corral.catalog.store import PullError
    from corral.catalog.store import pull as pull_model

    settings = _settings(catalog, data_dir)
    try:
        cat = load_catalog(settings.catalog)
        path = pull_model(cat, model, settings.data_dir / "models", progress=progress)
    except (CatalogError, PullError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{model}: {path}")
