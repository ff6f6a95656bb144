"""The console's pages. Each reads through the service the JSON API uses, with the same
owner (the signed-in key's project), so a page shows exactly what its API call would."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from corral.accounts.usage import Window, daily
from corral.api.body import read_model
from corral.api.deps import ServicesDep
from corral.catalog.models import ModelsService
from corral.core.errors import PermissionDeniedError
from corral.protocol.evals import EvalRun
from corral.tuning.data import DataError, parse_line
from corral.web.console.common import Console, ConsoleDep, render
from corral.web.usage import bar_chart

router = APIRouter(prefix="/console", include_in_schema=False)

PREVIEW_BYTES = 64 * 1024
MAX_LINE_ERRORS = 100


def model_options(services: Any, console: Console) -> list[dict[str, Any]]:
    """Every model a client can call now, as /v1/models lists it for this caller."""
    org = None if console.principal.is_admin else console.principal.org_id
    cards = ModelsService(services.registry).list(org).data
    allowed = console.principal.allowed_models
    options = []
    for card in cards:
        if allowed is not None and card.id not in allowed:
            continue
        if card.capabilities and "chat" not in card.capabilities:
            continue  # the playground, evals and fine-tuning all chat
        pricing = card.pricing
        options.append(
            {
                "id": card.id,
                "kind": "alias" if card.alias_for else "fine-tune" if card.parent else "snapshot",
                "target": card.alias_for or card.parent or "",
                "state": card.state or "active",
                "input": pricing.input if pricing else 0.0,
                "output": pricing.output if pricing else 0.0,
                "reasoning": "reasoning" in card.capabilities,
                "tools": "tools" in card.capabilities,
            }
        )
    return options


@router.get("/playground")
async def playground(
    request: Request, services: ServicesDep, console: ConsoleDep, model: str | None = None
) -> Response:
    options = model_options(services, console)
    chosen = model if any(o["id"] == model for o in options) else None
    if chosen is None:
        loaded = services.settings.model  # the model this server loads at start
        chosen = next((o["id"] for o in options if o["id"] == loaded), None)
        chosen = chosen or (options[0]["id"] if options else "")
    return render(
        request,
        console,
        "console_playground.html",
        "playground",
        title="Playground",
        models=options,
        chosen=chosen,
    )


# -- keys -------------------------------------------------------------------------------


async def _key_usage(services: Any, project_ids: list[str] | None) -> dict[str, dict[str, int]]:
    window = Window.parse(int(time.time()) - 30 * 86400, None, "1d", 31)
    report = await services.usage.completions(window, ["api_key_id"], project_ids)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "tokens": 0})
    for bucket in report["data"]:
        for r in bucket["results"]:
            t = totals[r["api_key_id"]]
            t["requests"] += r["num_model_requests"]
            t["tokens"] += r["input_tokens"] + r["output_tokens"]
    return totals


@router.get("/keys")
async def keys_page(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    principal = console.principal
    if principal.is_admin:
        projects = await services.keys.list_projects()
        keys = await services.keys.list_keys()
        scope = None
    elif principal.project_id is not None:
        projects = [p for p in await services.keys.list_projects() if p.id == principal.project_id]
        keys = await services.keys.list_keys(principal.project_id)
        scope = [principal.project_id]
    else:
        raise PermissionDeniedError("This key belongs to no project.")
    names = {p.id: p.name for p in projects}
    return render(
        request,
        console,
        "console_keys.html",
        "keys",
        title="Keys",
        keys=keys,
        projects=projects,
        names=names,
        usage=await _key_usage(services, scope),
    )


# -- usage ------------------------------------------------------------------------------


@router.get("/usage")
async def usage(
    request: Request,
    services: ServicesDep,
    console: ConsoleDep,
    days: int = Query(7, ge=1, le=31),
) -> Response:
    principal = console.principal
    scope = None if principal.is_admin else [principal.project_id or "-"]
    window = Window.parse(int(time.time()) - (days - 1) * 86400, None, "1d", days)
    days_ = await daily(services.usage, window, scope)
    labels = [d.day for d in days_]
    chart = bar_chart(labels, [d.cost for d in days_], "Cost per day, USD") + bar_chart(
        labels, [d.tokens / 1000 for d in days_], "Tokens per day, thousands"
    )
    return render(
        request,
        console,
        "console_usage.html",
        "usage",
        title="Usage",
        days=days,
        rows=[(d.day, r) for d in days_ for r in d.rows],
        chart=chart,
        scope="all projects" if scope is None else f"project {console.project_name}",
        per_project=await _per_project(services, window) if scope is None else [],
    )


async def _per_project(services: Any, window: Window) -> list[dict[str, Any]]:
    """The window's requests, tokens and cost per project (an admin's view)."""
    names = {p.id: p.name for p in await services.keys.list_projects()}
    tokens = await services.usage.completions(window, ["project_id"], None)
    costs = await services.usage.costs(window, ["project_id"], None)
    rows: dict[str | None, dict[str, Any]] = {}

    def row(pid: str | None) -> dict[str, Any]:
        name = names.get(pid or "", "(admin / open mode)")
        return rows.setdefault(pid, {"name": name, "requests": 0, "tokens": 0, "cost": 0.0})

    for bucket in tokens["data"]:
        for r in bucket["results"]:
            target = row(r["project_id"])
            target["requests"] += r["num_model_requests"]
            target["tokens"] += r["input_tokens"] + r["output_tokens"]
    for bucket in costs["data"]:
        for r in bucket["results"]:
            row(r["project_id"])["cost"] += r["amount"]["value"]
    return sorted(rows.values(), key=lambda r: -float(r["cost"]))


# -- files ------------------------------------------------------------------------------


@router.get("/files")
async def files_page(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    listing = await services.files.list(console.owner, None, 200, None, "desc")
    return render(
        request, console, "console_files.html", "files", title="Files", files=listing.data
    )


def check_lines(raw: bytes) -> tuple[int, list[dict[str, Any]]]:
    """Every line of a chat JSONL file checked as fine-tuning will (the job stops at the
    first bad line; here each bad line is named)."""
    examples, errors = 0, list[dict[str, Any]]()
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parse_line(n, line)
            examples += 1
        except DataError as exc:
            if len(errors) < MAX_LINE_ERRORS:
                errors.append({"line": n, "error": exc.problem})
    return examples, errors


async def _file(services: Any, console: Console, file_id: str) -> tuple[Any, bytes]:
    meta = await services.files.retrieve(console.owner, file_id)
    path = await services.files.content(console.owner, file_id)
    with open(path, "rb") as f:  # noqa: ASYNC230 - a bounded local read
        return meta, f.read(PREVIEW_BYTES + 1)


@router.get("/files/{file_id}")
async def file_page(
    file_id: str, request: Request, services: ServicesDep, console: ConsoleDep
) -> Response:
    meta, raw = await _file(services, console, file_id)
    text = raw[:PREVIEW_BYTES].decode("utf-8", "replace")
    examples, errors = check_lines(raw[:PREVIEW_BYTES]) if meta.purpose == "fine-tune" else (0, [])
    return render(
        request,
        console,
        "console_file.html",
        "files",
        title=meta.filename,
        file=meta,
        text=text,
        cut=len(raw) > PREVIEW_BYTES,
        examples=examples,
        errors=errors,
    )


@router.get("/api/files/{file_id}/check")
async def check_file(file_id: str, services: ServicesDep, console: ConsoleDep) -> dict[str, Any]:
    """The per-line check of a training file, for the upload form's script."""
    path = await services.files.content(console.owner, file_id)
    with open(path, "rb") as f:  # noqa: ASYNC230 - a bounded local read
        raw = f.read(services.files.max_bytes)
    examples, errors = check_lines(raw)
    return {"file_id": file_id, "examples": examples, "errors": errors}


# -- vector stores ----------------------------------------------------------------------


@router.get("/vector-stores")
async def vector_stores_page(
    request: Request, services: ServicesDep, console: ConsoleDep, after: str | None = None
) -> Response:
    listing = await services.vector_stores.list(console.principal, 100, after, "desc")
    return render(
        request,
        console,
        "console_vector_stores.html",
        "vector-stores",
        title="Vector stores",
        stores=listing.data,
        more=listing.last_id if listing.has_more else None,
    )


@router.get("/vector-stores/{store_id}")
async def vector_store_page(
    store_id: str,
    request: Request,
    services: ServicesDep,
    console: ConsoleDep,
    after: str | None = None,
) -> Response:
    stores = services.vector_stores
    store = await stores.retrieve(console.principal, store_id)  # another project's: 404
    files = await stores.files.list(store.id, 100, after, "desc", None)
    found = await stores.files.names(store.id, [f.id for f in files.data])
    return render(
        request,
        console,
        "console_vector_store.html",
        "vector-stores",
        title=store.name or store.id,
        store=store,
        files=files.data,
        names={k: name for k, (name, _) in found.items()},
        sizes={k: size for k, (_, size) in found.items()},
        more=files.last_id if files.has_more else None,
    )


# -- fine-tuning ------------------------------------------------------------------------


@router.get("/fine-tuning")
async def fine_tuning(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    jobs = await services.fine_tuning.list(console.owner, 100, None)
    files = await services.files.list(console.owner, "fine-tune", 100, None, "desc")
    bases = [o for o in model_options(services, console) if o["kind"] != "fine-tune"]
    return render(
        request,
        console,
        "console_fine_tuning.html",
        "fine-tuning",
        title="Fine-tuning",
        jobs=jobs.data,
        files=files.data,
        bases=bases,
        default_base=services.settings.model,  # the model this server loads at start
    )


@router.get("/fine-tuning/{job_id}")
async def fine_tuning_job(
    job_id: str, request: Request, services: ServicesDep, console: ConsoleDep
) -> Response:
    job = await services.fine_tuning.retrieve(console.owner, job_id)
    events = await services.fine_tuning.events(console.owner, job_id, 200, None)
    return render(
        request,
        console,
        "console_job.html",
        "fine-tuning",
        title=job.id,
        job=job,
        events=events.data,
    )


# -- evals ------------------------------------------------------------------------------


@router.get("/evals")
async def evals_page(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    evals = (await services.evals.list_evals(console.owner, 100, None, "desc")).data
    runs = {
        e.id: (await services.evals.list_runs(console.owner, e.id, 20, None, "desc", None)).data
        for e in evals
    }
    return render(
        request,
        console,
        "console_evals.html",
        "evals",
        title="Evals",
        evals=evals,
        runs=runs,
        files=(await services.files.list(console.owner, "evals", 100, None, "desc")).data,
        first_field={e.id: _first_field(e.data_source_config) for e in evals},
        models=model_options(services, console),
    )


def _first_field(config: dict[str, Any]) -> str:
    """The item field a run's user message most likely shows (the schema's first)."""
    properties = (config.get("item_schema") or {}).get("properties") or {}
    return next(iter(properties), "input")


def pass_rate(run: Any) -> str:
    counts = run.result_counts
    graded = counts.passed + counts.failed + counts.errored
    return f"{100 * counts.passed / graded:.0f}%" if graded else "-"


async def _run_view(
    services: Any, console: Console, eval_id: str, run_id: str, after: str | None = None
) -> Any:
    run = await services.evals.retrieve_run(console.owner, eval_id, run_id)
    items = await services.evals.list_items(console.owner, eval_id, run_id, 100, after, "asc", None)
    return run, items


@router.get("/evals/{eval_id}/runs/{run_id}")
async def eval_run(
    eval_id: str,
    run_id: str,
    request: Request,
    services: ServicesDep,
    console: ConsoleDep,
    after: str | None = None,
) -> Response:
    run, items = await _run_view(services, console, eval_id, run_id, after)
    return render(
        request,
        console,
        "console_run.html",
        "evals",
        title=run.name,
        run=run,
        items=items.data,
        more=items.last_id if items.has_more else None,
        rate=pass_rate(run),
        models=model_options(services, console),
    )


class Rerun(BaseModel):
    model: str = Field(min_length=1, max_length=512)


@router.post("/api/evals/{eval_id}/runs/{run_id}/rerun")
async def rerun(
    eval_id: str, run_id: str, request: Request, services: ServicesDep, console: ConsoleDep
) -> EvalRun:
    body = await read_model(request, Rerun, services.settings.limits.max_body_bytes)
    return await services.evals.rerun(console.owner, console.principal, eval_id, run_id, body.model)


@router.get("/evals/{eval_id}/compare")
async def compare_runs(
    eval_id: str,
    request: Request,
    services: ServicesDep,
    console: ConsoleDep,
    a: str = Query(...),
    b: str = Query(...),
) -> Response:
    run_a, items_a = await _run_view(services, console, eval_id, a)
    run_b, items_b = await _run_view(services, console, eval_id, b)
    by_b = {i.datasource_item_id: i for i in items_b.data}
    pairs = [(i, by_b.get(i.datasource_item_id)) for i in items_a.data]
    return render(
        request,
        console,
        "console_compare.html",
        "evals",
        title="Compare runs",
        a=run_a,
        b=run_b,
        pairs=pairs,
        rate_a=pass_rate(run_a),
        rate_b=pass_rate(run_b),
    )


# -- batches ----------------------------------------------------------------------------


@router.get("/batches")
async def batches_page(request: Request, services: ServicesDep, console: ConsoleDep) -> Response:
    batches = await services.batches.list(console.principal, 100, None)
    return render(
        request, console, "console_batches.html", "batches", title="Batches", batches=batches.data
    )
