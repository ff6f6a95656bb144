"""Crash soak: two corral replicas on one PostgreSQL behind a gateway corral, mixed
traffic, one replica SIGKILLed and restarted at random moments; then the books are
checked against the databases and the API. `make soak SOAK_MINUTES=3`.

Writes its figures between markers in docs/reliability.md and prints them; exits 1 when
a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from systems import free_port

from corral.bench.soak import (
    Call,
    Spend,
    UsageRow,
    failure_rate,
    in_flight,
    replace_section,
    rss_growth,
    spend_findings,
    usage_findings,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
ADMIN_URL = os.environ.get("CORRAL_SOAK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
MODEL = "smollm2-135m-instruct"
GATEWAY_MODEL = "soak-model"
SECRET = "soak-shared-hmac-secret"
WARMUP_S = 45.0
FINAL = {"completed", "failed", "canceled", "cancelled", "expired", "succeeded"}
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


# --- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    """A `corral serve` in its own process group (a kill takes its engine child too, as a
    lost machine or container would)."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    lives: list[list[tuple[float, float]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "corral", "serve", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.lives.append([])

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self) -> int | None:
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(60)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait(10)

    def sample(self) -> None:
        """Record the resident memory of the process and its children."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            root = psutil.Process(self.popen.pid)
            procs = [root, *root.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return
        self.lives[-1].append((time.monotonic() - self.started, float(rss)))

    async def wait_ready(self, within_s: float = 180.0) -> None:
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                try:
                    if (await http.get(self.url + "/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready; see {self.log}")


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL + name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_key(env: dict[str, str], project: str, budget_usd: float | None) -> str:
    args = [sys.executable, "-m", "corral", "keys", "create", "--project", project]
    if budget_usd is not None:
        args += ["--budget-usd", str(budget_usd)]
    out = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout.strip().splitlines()[-1]


def gateway_catalog(path: Path, replicas: list[Proc]) -> Path:
    urls = ", ".join(f'"{r.url}/v1"' for r in replicas)
    path.write_text(
        f"""version: 1
families:
  - id: {GATEWAY_MODEL}
    name: Soak model
    owner: corral-soak
    description: The embedded model, served by a pool of two corral replicas.
    context_window: 8192
    capabilities: [chat, completions, tools, embeddings]
    pricing: {{input: 0.1, cached_input: 0.05, output: 0.2}}
    snapshots:
      - id: {GATEWAY_MODEL}-2025-01-01
        stages: {{active: 2025-01-01}}
        source:
          upstream: {{urls: [{urls}], model: {MODEL}, api_key_env: SOAK_UPSTREAM_KEY}}
"""
    )
    return path


# --- the cluster -------------------------------------------------------------------------


@dataclass
class Cluster:
    work: Path
    replica_db: str
    gateway_db: str
    replicas: list[Proc]
    gateway: Proc
    keys: dict[str, str]
    budgets: dict[str, float]


def replica_env(work: Path, db_url: str, i: int) -> dict[str, str]:
    return {
        "CORRAL_DATABASE_URL": db_url,
        "CORRAL_SECRET_KEY": SECRET,
        "CORRAL_DATA_DIR": str(work / f"replica{i}"),
        "CORRAL_FILES__DIR": str(work / "files"),  # shared, as a volume would be
        "CORRAL_FINE_TUNING__WORKER": "false",
        "CORRAL_BATCHES__STALE_AFTER_S": "15",
        "CORRAL_ACCOUNTS__RESERVATION_TTL_S": "30",
        # Small answers on one thread each: the soak measures the books, not speed, and
        # must leave a small shared box room to breathe.
        "CORRAL_ENGINE__N_THREADS": "1",
        "CORRAL_ENGINE__N_CTX": "4096",
    }


async def start_cluster(work: Path, rdb: str, gdb: str, started: list[Proc]) -> Cluster:
    """Databases made, keys created, replicas then the gateway started (each put in
    ``started`` as it starts, so a failed start still stops what ran)."""
    rurl, gurl = create_database(rdb), create_database(gdb)
    envs = [replica_env(work, rurl, i) for i in range(2)]
    budgets = {"direct": 5.0, "evals": 5.0, "batches": 5.0, "soak": 5.0, "tight": 0.00004}
    keys = {p: create_key(envs[0], p, budgets[p]) for p in ("direct", "evals", "batches")}
    keys["upstream"] = create_key(envs[0], "upstream", None)
    replicas = [Proc(f"replica{i}", free_port(), envs[i], work / f"replica{i}.log") for i in (0, 1)]
    for r in replicas:
        r.start()
        started.append(r)
    genv = {
        "CORRAL_DATABASE_URL": gurl,
        "CORRAL_SECRET_KEY": SECRET + "-gateway",
        "CORRAL_DATA_DIR": str(work / "gateway"),
        "CORRAL_CATALOG": str(gateway_catalog(work / "gateway.yaml", replicas)),
        "CORRAL_MODEL": GATEWAY_MODEL,
        "CORRAL_FINE_TUNING__WORKER": "false",
        "CORRAL_ACCOUNTS__RESERVATION_TTL_S": "30",
        "SOAK_UPSTREAM_KEY": keys["upstream"],
    }
    keys.update({p: create_key(genv, p, budgets[p]) for p in ("soak", "tight")})
    gateway = Proc("gateway", free_port(), genv, work / "gateway.log")
    for r in replicas:
        await r.wait_ready()
    gateway.start()
    started.append(gateway)
    await gateway.wait_ready()
    return Cluster(work, rdb, gdb, replicas, gateway, keys, budgets)


# --- traffic -----------------------------------------------------------------------------


@dataclass
class Soak:
    cluster: Cluster
    deadline: float
    calls: list[Call] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    evals: list[tuple[str, str]] = field(default_factory=list)  # (eval id, run id)
    batches: list[str] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    def live_replica(self) -> Proc:
        up = [r for r in self.cluster.replicas if r.name not in self.down]
        return random.choice(up)

    def job_replica(self) -> Proc:
        """The replica that is killed, while it is up: its worker, woken by the
        submission, claims the job, so kills land on running jobs."""
        victim, other = self.cluster.replicas[1], self.cluster.replicas[0]
        return other if victim.name in self.down else victim


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat_body(kind: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": GATEWAY_MODEL,
        "messages": [SYSTEM, {"role": "user", "content": f"Say something about number {n}."}],
        "max_tokens": 8,
    }
    if kind == "stream":
        body |= {"stream": True, "stream_options": {"include_usage": True}, "max_tokens": 12}
    if kind == "tools":
        body |= {"tools": [TOOL], "tool_choice": "required", "max_tokens": 32}
        body["messages"][1]["content"] = f"What is the weather in city number {n}?"
    return body


def tokens_of(usage: dict[str, Any] | None) -> tuple[int, int] | None:
    if not usage:
        return None
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


async def whole(
    http: httpx.AsyncClient, kind: str, url: str, key: str, body: dict[str, Any]
) -> Call:
    start = time.monotonic()
    try:
        r = await http.post(url, json=body, headers=headers(key))
    except httpx.HTTPError as exc:
        return Call(kind, start, time.monotonic(), 0, None, False, error=repr(exc))
    ok = r.status_code == 200
    usage = r.json().get("usage") if ok else None
    error = "" if ok else r.text[:200]
    rid = r.headers.get("x-request-id")
    return Call(kind, start, time.monotonic(), r.status_code, rid, ok, tokens_of(usage), error)


async def streamed(http: httpx.AsyncClient, url: str, key: str, body: dict[str, Any]) -> Call:
    start, status, rid = time.monotonic(), 0, None
    usage: dict[str, Any] | None = None
    done, error = False, ""
    try:
        async with http.stream("POST", url, json=body, headers=headers(key)) as r:
            status, rid = r.status_code, r.headers.get("x-request-id")
            async for line in r.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    error = json.dumps(event["error"])[:200] if "error" in event else error
                    usage = event.get("usage") or usage
            if status != 200:
                error = (await r.aread()).decode()[:200]
    except httpx.HTTPError as exc:
        error = repr(exc)
    complete = status == 200 and done and not error
    return Call("stream", start, time.monotonic(), status, rid, complete, tokens_of(usage), error)


async def client_loop(soak: Soak, n: int) -> None:
    gw = soak.cluster.gateway.url + "/v1"
    async with httpx.AsyncClient(timeout=120) as http:
        i = 0
        while time.monotonic() < soak.deadline:
            i += 1
            kind = random.choices(["chat", "stream", "tools", "embed", "tight"], [3, 4, 2, 2, 1])[0]
            soak.calls.append(await one_call(soak, http, gw, kind, n * 100_000 + i))


async def one_call(soak: Soak, http: httpx.AsyncClient, gw: str, kind: str, n: int) -> Call:
    keys = soak.cluster.keys
    if kind == "stream":
        return await streamed(http, gw + "/chat/completions", keys["soak"], chat_body(kind, n))
    if kind == "embed":
        body = {"model": MODEL, "input": [f"soak text {n}", "another text"]}
        url = soak.live_replica().url + "/v1/embeddings"  # straight to a replica, as an LB
        return await whole(http, kind, url, keys["direct"], body)
    key = keys["tight"] if kind == "tight" else keys["soak"]
    return await whole(http, kind, gw + "/chat/completions", key, chat_body(kind, n))


async def killer(soak: Soak, every: tuple[float, float]) -> None:
    """SIGKILL replica1 at random moments, restart it after a short pause."""
    victim = soak.cluster.replicas[1]
    while True:
        await asyncio.sleep(random.uniform(*every))
        if time.monotonic() > soak.deadline - 10:
            return
        soak.down.add(victim.name)
        await asyncio.sleep(0.5)  # the "load balancer" of direct calls saw it leave
        soak.kills.append(time.monotonic())
        victim.signal(signal.SIGKILL)
        assert victim.popen is not None
        victim.popen.wait(10)
        print(f"  kill {len(soak.kills)} at {soak.kills[-1] - soak.deadline:+.0f} s", flush=True)
        await asyncio.sleep(random.uniform(1, 5))
        victim.start()
        await victim.wait_ready()
        soak.down.discard(victim.name)


async def sampler(soak: Soak) -> None:
    procs = [*soak.cluster.replicas, soak.cluster.gateway]
    while time.monotonic() < soak.deadline:
        for p in procs:
            p.sample()
        await asyncio.sleep(5)


# --- durable jobs: an eval run and batches, through whichever replica is up --------------


async def jobs_loop(soak: Soak) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        await guarded(lambda: submit_eval(soak, http))
        while time.monotonic() < soak.deadline - 20:
            await guarded(lambda: submit_batch(soak, http))
            await asyncio.sleep(35)


async def guarded(job: Callable[[], Awaitable[None]]) -> None:
    """A submission that met a kill is tried again (on whichever replica is up)."""
    for attempt in range(3):
        try:
            await job()
            return
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"  job submission {attempt + 1} failed: {exc!r}", flush=True)
            await asyncio.sleep(2)


async def api(
    soak: Soak, http: httpx.AsyncClient, key: str, path: str, **kw: Any
) -> dict[str, Any]:
    url = soak.job_replica().url + "/v1" + path
    r = await http.post(url, headers=headers(soak.cluster.keys[key]), **kw)
    if r.status_code != 200:
        raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
    out: dict[str, Any] = r.json()
    return out


async def submit_eval(soak: Soak, http: httpx.AsyncClient) -> None:
    ev = await api(soak, http, "evals", "/evals", json=eval_definition())
    items = [
        {"item": {"question": f"What is {i} plus {i}?", "answer": str(2 * i)}} for i in range(24)
    ]
    source = {
        "type": "completions",
        "model": MODEL,
        "input_messages": {
            "type": "template",
            "template": [SYSTEM, {"role": "user", "content": "{{item.question}}"}],
        },
        "sampling_params": {"temperature": 0, "seed": 1, "max_completion_tokens": 8},
        "source": {"type": "file_content", "content": items},
    }
    run = await api(soak, http, "evals", f"/evals/{ev['id']}/runs", json={"data_source": source})
    soak.evals.append((ev["id"], run["id"]))


def eval_definition() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
    }
    criterion = {
        "type": "string_check",
        "name": "has the answer",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "operation": "like",
    }
    return {
        "name": "soak addition",
        "data_source_config": {
            "type": "custom",
            "item_schema": schema,
            "include_sample_schema": True,
        },
        "testing_criteria": [criterion],
    }


async def submit_batch(soak: Soak, http: httpx.AsyncClient) -> None:
    n = len(soak.batches)
    lines = [
        {
            "custom_id": f"b{n}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [SYSTEM, {"role": "user", "content": f"Name a colour ({i})."}],
                "max_tokens": 8,
            },
        }
        for i in range(24)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    files = {"file": (f"soak-{n}.jsonl", data, "application/jsonl")}
    stored = await api(soak, http, "batches", "/files", files=files, data={"purpose": "batch"})
    soak.files[stored["id"]] = data
    body = {
        "input_file_id": stored["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batch = await api(soak, http, "batches", "/batches", json=body)
    soak.batches.append(batch["id"])


# --- after the traffic: drain, sweep, check ----------------------------------------------


def query(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(ADMIN_URL + db) as conn:
        return conn.execute(sql, args).fetchall()


def unfinished(db: str) -> list[str]:
    """Eval runs, batches and fine-tuning jobs not in a final state."""
    rows = [
        *query(db, "select 'eval run ' || id, status from eval_runs"),
        *query(db, "select 'batch ' || id, status from batches"),
        *query(db, "select 'fine-tune ' || id, status from fine_tuning_jobs"),
    ]
    return [f"{what} {status}" for what, status in rows if status not in FINAL]


async def wait_until(check: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(2)
    return check()


def reservations(db: str) -> int:
    return int(query(db, "select count(*) from reservations")[0][0])


def project_ids(db: str) -> dict[str, str]:
    return {name: pid for pid, name in query(db, "select id, name from projects")}


def usage_rows(db: str, project: str) -> list[UsageRow]:
    pid = project_ids(db)[project]
    sql = "select request_id, prompt_tokens, completion_tokens from usage where project_id = %s"
    return [UsageRow(*row) for row in query(db, sql, pid)]


def spends(db: str) -> list[Spend]:
    sql = """
        select p.name, p.budget_nano,
            coalesce((select sum(spent_nano) from spend s where s.project_id = p.id), 0),
            coalesce((select sum(reserved_nano) from spend s where s.project_id = p.id), 0),
            coalesce((select sum(cost_nano) from usage u where u.project_id = p.id), 0)
        from projects p"""
    return [Spend(name, b, int(s), int(r), int(u)) for name, b, s, r, u in query(db, sql)]


def job_billing(db: str) -> tuple[list[str], dict[str, int]]:
    """Batch lines and eval items each billed once: usage rows against finished work."""
    pids = project_ids(db)
    count = "select count(*) from usage where project_id = %s"
    batch_rows = int(query(db, count, pids["batches"])[0][0])
    lines = sum(
        json.loads(c)["completed"] if isinstance(c, str) else c["completed"]
        for (c,) in query(db, "select request_counts from batches")
    )
    eval_rows = int(query(db, count, pids["evals"])[0][0])
    items = int(query(db, "select count(*) from eval_output_items")[0][0])
    findings = []
    if batch_rows != lines:
        findings.append(f"batches: {lines} lines completed, {batch_rows} usage rows")
    if eval_rows != items:
        findings.append(f"evals: {items} output items, {eval_rows} usage rows")
    figures = {"batch lines": lines, "eval items": items}
    return findings, figures


async def file_findings(soak: Soak) -> tuple[list[str], int]:
    """Every uploaded file and every batch output reads back whole from each replica."""
    cluster, findings, checked = soak.cluster, [], 0
    wanted: dict[str, bytes | None] = dict(soak.files)
    for (out,) in query(cluster.replica_db, "select output_file_id from batches"):
        if out:
            wanted[out] = None
    async with httpx.AsyncClient(timeout=30) as http:
        for fid, data in wanted.items():
            for r in cluster.replicas:
                url = f"{r.url}/v1/files/{fid}/content"
                got = await http.get(url, headers=headers(cluster.keys["batches"]))
                checked += 1
                if got.status_code != 200 or (data is not None and got.content != data):
                    findings.append(f"file {fid} on {r.name}: {got.status_code}")
    return findings, checked


def secrets_in_logs(c: Cluster) -> tuple[list[str], int]:
    """No key, key hash or server secret in any log line (corral's and its engines')."""
    secrets = [*c.keys.values(), SECRET, SECRET + "-gateway"]
    for db in (c.replica_db, c.gateway_db):
        secrets += [h for (h,) in query(db, "select secret_hash from api_keys")]
    logs = [*c.work.glob("*.log"), *c.work.glob("*/**/*.log")]
    found = [
        f"{log.relative_to(c.work)} holds a key, key hash or secret"
        for log in logs
        if any(s in log.read_text(errors="replace") for s in secrets)
    ]
    return found, len(logs)


@dataclass
class Outcome:
    findings: list[str]
    figures: dict[str, str]


def memory_figures(procs: list[Proc]) -> tuple[list[str], dict[str, str]]:
    findings, figures = [], {}
    for p in procs:
        growths = [g for life in p.lives if (g := rss_growth(life, WARMUP_S)) is not None]
        if not growths:
            figures[f"RSS growth {p.name}"] = "no life long enough after warm-up"
            continue
        worst = max(growths)
        peak = max(rss for life in p.lives for _, rss in life) / 2**20
        figures[f"RSS growth {p.name}"] = f"{worst:+.1%} (peak {peak:.0f} MiB)"
        if worst >= 0.10:
            findings.append(f"{p.name}: RSS grew {worst:.1%} after warm-up")
    return findings, figures


def traffic_figures(soak: Soak) -> tuple[list[str], dict[str, str]]:
    calls, kills = soak.calls, soak.kills
    failed, considered = failure_rate(calls, kills)
    hit = [c for c in calls if in_flight(c, kills)]
    kinds = sorted({c.kind for c in calls})
    figures = {
        "kills survived": str(len(kills)),
        "requests": ", ".join(f"{k} {sum(c.kind == k for c in calls)}" for k in kinds),
        "answered 200": str(sum(c.status == 200 for c in calls)),
        "refused 429 (tight budget)": str(sum(c.status == 429 for c in calls)),
        "in flight at a kill": f"{len(hit)} ({sum(not c.complete for c in hit)} failed)",
        "failed, not in flight at a kill": f"{failed} of {considered}"
        f" ({failed / max(considered, 1):.2%})",
    }
    findings = []
    if failed > 0.001 * considered:
        bad = [c for c in calls if not in_flight(c, kills) and not c.complete and c.status != 429]
        sample = "; ".join(f"{c.kind} {c.status} {c.error[:80]}" for c in bad[:5])
        findings.append(f"{failed} of {considered} requests not in flight failed: {sample}")
    return findings, figures


async def check(soak: Soak) -> Outcome:
    c = soak.cluster
    print("draining jobs and waiting for the reservation sweep ...", flush=True)
    await wait_until(lambda: not unfinished(c.replica_db), 300)
    await wait_until(lambda: reservations(c.replica_db) + reservations(c.gateway_db) == 0, 150)
    findings = [f"stuck: {s}" for s in unfinished(c.replica_db) + unfinished(c.gateway_db)]
    left = reservations(c.replica_db) + reservations(c.gateway_db)
    if left:
        findings.append(f"{left} reservations left after the sweep")
    gw_calls = [x for x in soak.calls if x.kind != "embed"]
    gw_rows = usage_rows(c.gateway_db, "soak") + usage_rows(c.gateway_db, "tight")
    direct_rows = usage_rows(c.replica_db, "direct")
    findings += usage_findings(gw_calls, gw_rows)
    findings += usage_findings([x for x in soak.calls if x.kind == "embed"], direct_rows)
    findings += spend_findings(spends(c.replica_db) + spends(c.gateway_db))
    job_found, job_figures = job_billing(c.replica_db)
    files_found, files_checked = await file_findings(soak)
    traffic_found, figures = traffic_figures(soak)
    memory_found, memory = memory_figures([*c.replicas, c.gateway])
    upstream = len(usage_rows(c.replica_db, "upstream"))
    taken_up = sum(log.read_text().count("lost its worker") for log in c.work.glob("replica*.log"))
    figures |= {
        "usage rows checked": f"{len(gw_rows)} gateway, {len(direct_rows)} direct, "
        f"{upstream} upstream (gateway → replicas)",
        "durable jobs": f"{len(soak.evals)} eval runs ({job_figures['eval items']} items), "
        f"{len(soak.batches)} batches ({job_figures['batch lines']} lines); "
        f"{taken_up} taken up again after a kill",
        "files read back": f"{files_checked} reads of {files_checked // 2} files",
        "reservations left": str(left),
        **memory,
    }
    secrets_found, logs = secrets_in_logs(c)
    figures["logs scanned for keys and secrets"] = f"{logs} ({len(secrets_found)} holding one)"
    findings += job_found + files_found + traffic_found + memory_found + secrets_found
    return Outcome(findings, figures)


def section(minutes: float, outcome: Outcome) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {k} | {v} |" for k, v in outcome.figures.items())
    found = "\n".join(f"- {f}" for f in outcome.findings) or "- none: every check passed"
    return f"""## Crash soak

`make soak SOAK_MINUTES=3` (benchmarks/soak.py; checks in `corral.bench.soak`): two corral
replicas on one fresh PostgreSQL database (a shared `CORRAL_FILES__DIR`), a gateway corral
on its own database whose model is an upstream pool of the two; a few clients send
streamed and whole chat and required tool calls through the gateway (one on a project
with a budget it spends), embeddings straight to a live replica; an eval run and a batch
every 35 s go to replica 1 while it is up (its worker claims them, so kills land on
running jobs). Replica 1 is SIGKILLed with its engine child at random
moments and restarted. Then: jobs drained, the reservation sweep awaited, and the books
checked against both databases and the API — each request answered 200 has its usage
row with the tokens it reported, no row without a request, spend equal to the usage
rows' sum and within budget, no reservation left, no eval run, batch or fine-tune left
unfinished, every batch line and eval item billed once, every file read back whole from
both replicas, < 0.1% failures among requests no kill was in the middle of, RSS growth
< 10% after {WARMUP_S:.0f} s of warm-up (a life of the killed replica is too short to
say), no key, key hash or server secret in any log of the processes or their engines.
No fine-tune runs in it: loading the GGUF into transformers and training take both cores of a small box for minutes and would starve
the traffic being measured; the fine-tuning worker's restart after a kill is tested on
its own (tests/tuning).

Reading the figures: a request in flight at a kill may fail (its replica died under it);
the gateway bills a stream cut that way for what ran, while the dead replica never wrote
its own row, so the upstream rows can be a few fewer than the gateway's. Found while
building the soak (in the code, before a run): each replica kept uploads under its own
data dir, so a batch submitted
through one replica and claimed by the other's worker could not read its file, and a file
listed by the database 404'd on the other replica; `files.dir` (`CORRAL_FILES__DIR`) now
names one shared folder (deploy/compose.yaml mounts a volume; tests/core/test_config.py).

Latest run: {when}, {minutes:g} minutes, {os.cpu_count()} cores shared with other work.

| figure | value |
|---|---|
{rows}

Findings:

{found}
"""


async def soak_run(minutes: float, clients: int, every: tuple[float, float]) -> Outcome:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    work = Path(tempfile.mkdtemp(prefix=f"corral-soak-{stamp}-"))
    print(f"soak {minutes:g} min, work dir {work}", flush=True)
    rdb, gdb = f"corral_soak_{stamp}", f"corral_soak_{stamp}_gw"
    started: list[Proc] = []
    try:
        cluster = await start_cluster(work, rdb, gdb, started)
        soak = Soak(cluster, time.monotonic() + minutes * 60)
        tasks = [client_loop(soak, n) for n in range(clients)]
        await asyncio.gather(*tasks, killer(soak, every), sampler(soak), jobs_loop(soak))
        dump(soak, work / "calls.json")
        return await check(soak)
    finally:
        for p in reversed(started):
            p.stop()
        drop_database(rdb)
        drop_database(gdb)


def dump(soak: Soak, path: Path) -> None:
    """Every call and kill, relative to the soak's end (for looking into a finding)."""
    end = soak.deadline
    calls = [{**asdict(c), "start": c.start - end, "end": c.end - end} for c in soak.calls]
    path.write_text(json.dumps({"kills": [k - end for k in soak.kills], "calls": calls}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--kill-every", default="25,50", help="seconds: min,max")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    low, high = (float(x) for x in args.kill_every.split(","))
    outcome = asyncio.run(soak_run(args.minutes, args.clients, (low, high)))
    text = section(args.minutes, outcome)
    print(text)
    if not args.no_doc:
        DOC.write_text(replace_section(DOC.read_text(), text))
    sys.exit(1 if outcome.findings else 0)


if __name__ == "__main__":
    main()
