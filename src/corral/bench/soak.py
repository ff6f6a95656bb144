"""The crash soak's checks (benchmarks/soak.py runs it): pure functions over what the
clients saw, what the database holds and what the processes weighed, so they are tested
without a soak."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BEGIN = "<!-- soak:begin (benchmarks/soak.py rewrites this section) -->"
END = "<!-- soak:end -->"


@dataclass(frozen=True)
class Call:
    """One request as its client saw it."""

    kind: str
    start: float
    end: float
    status: int  # 0: no HTTP answer (connection refused or cut before the headers)
    request_id: str | None  # the answer's x-request-id
    complete: bool  # 200 and the whole answer arrived (a stream's [DONE], no error event)
    tokens: tuple[int, int] | None = None  # prompt, completion tokens the answer reported
    error: str = ""


@dataclass(frozen=True)
class UsageRow:
    request_id: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Spend:
    project: str
    budget_nano: int | None
    spent_nano: int
    reserved_nano: int
    usage_cost_nano: int  # the sum of the project's usage rows


def in_flight(call: Call, kills: Iterable[float]) -> bool:
    """Was a kill between the request's start and its end?"""
    return any(call.start <= k <= call.end for k in kills)


def failure_rate(calls: Sequence[Call], kills: Sequence[float]) -> tuple[int, int]:
    """(failed, total) among the requests no kill was in the middle of. A refusal the
    client asked for (429 of a spent budget) is an answer, not a failure."""
    considered = [c for c in calls if not in_flight(c, kills)]
    failed = [c for c in considered if not c.complete and c.status != 429]
    return len(failed), len(considered)


def usage_findings(calls: Sequence[Call], rows: Sequence[UsageRow]) -> list[str]:
    """Each request answered 200 has its usage row, with the tokens the answer reported;
    every row belongs to a request a client sent (one whose answer never came may own a
    row the client cannot name: those rows are allowed up to that many)."""
    by_id = {r.request_id: r for r in rows}
    findings: list[str] = []
    for call in calls:
        if call.status != 200 or call.request_id is None:
            continue
        row = by_id.get(call.request_id)
        if row is None:
            findings.append(f"{call.kind} {call.request_id} answered 200 has no usage row")
        elif call.complete and call.tokens and call.tokens != row_tokens(row):
            findings.append(
                f"{call.kind} {call.request_id} reported {call.tokens}, billed {row_tokens(row)}"
            )
    seen = {c.request_id for c in calls if c.request_id}
    orphans = [r.request_id for r in rows if r.request_id not in seen]
    unnamed = sum(1 for c in calls if c.request_id is None)
    if len(orphans) > unnamed:
        findings.append(f"{len(orphans)} usage rows without a request: {orphans[:5]}")
    return findings


def row_tokens(row: UsageRow) -> tuple[int, int]:
    return row.prompt_tokens, row.completion_tokens


def spend_findings(spends: Iterable[Spend]) -> list[str]:
    """Billed once (spend equals the usage rows' sum), within budget, nothing reserved."""
    findings: list[str] = []
    for s in spends:
        if s.spent_nano != s.usage_cost_nano:
            findings.append(
                f"{s.project}: spent {s.spent_nano} nano$ but its usage rows sum to "
                f"{s.usage_cost_nano}"
            )
        if s.budget_nano is not None and s.spent_nano > s.budget_nano:
            findings.append(f"{s.project}: spent {s.spent_nano} past its budget {s.budget_nano}")
        if s.reserved_nano:
            findings.append(f"{s.project}: {s.reserved_nano} nano$ still reserved")
    return findings


def rss_growth(samples: Sequence[tuple[float, float]], warmup_s: float) -> float | None:
    """Growth of resident memory from the first sample after warm-up to the last, as a
    fraction; None when the process lived too briefly after warm-up to say (half a
    minute). A sample is (seconds since the process started, RSS in bytes)."""
    after = [rss for t, rss in samples if t >= warmup_s]
    if len(after) < 2 or samples[-1][0] - warmup_s < 30:
        return None
    return after[-1] / after[0] - 1


def replace_section(doc: str, section: str) -> str:
    """The document with the text between the soak's markers replaced (appended with its
    markers when it has none), so the other sections stay as they are."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return doc.rstrip() + "\n\n" + block + "\n"
