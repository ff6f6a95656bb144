"""The crash soak's checks, on made-up evidence (the soak itself is `make soak`)."""

from __future__ import annotations

from corral.bench.soak import (
    BEGIN,
    END,
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


def call(
    rid: str | None,
    status: int = 200,
    start: float = 0,
    end: float = 1,
    tokens: tuple[int, int] | None = None,
) -> Call:
    return Call("chat", start, end, status, rid, status == 200, tokens)


def test_a_kill_between_start_and_end_is_in_flight() -> None:
    assert in_flight(call("a", start=1, end=3), [2])
    assert not in_flight(call("a", start=1, end=3), [0.5, 3.5])


def test_failures_count_only_requests_no_kill_met_and_a_spent_budget_is_no_failure() -> None:
    calls = [
        call("a"),
        call(None, status=0, start=1, end=3),  # cut by the kill at 2
        call(None, status=0, start=4, end=5),  # refused after it: a failure
        call("d", status=429, start=6, end=7),
    ]
    assert failure_rate(calls, [2]) == (1, 3)


def test_every_answer_has_its_row_with_its_tokens_and_no_row_is_a_strangers() -> None:
    rows = [UsageRow("a", 10, 5), UsageRow("b", 10, 6)]
    assert usage_findings([call("a", tokens=(10, 5)), call("b", tokens=(10, 6))], rows) == []
    wrong = usage_findings([call("a", tokens=(10, 4)), call("b")], rows)
    assert wrong == ["chat a reported (10, 4), billed (10, 5)"]
    missing = usage_findings([call("a"), call("b"), call("c")], rows)
    assert missing == ["chat c answered 200 has no usage row"]
    orphan = usage_findings([call("a")], rows)
    assert orphan == ["1 usage rows without a request: ['b']"]
    # A request whose answer never came may own the row its client cannot name.
    assert usage_findings([call("a"), call(None, status=0)], rows) == []


def test_spend_is_the_rows_sum_within_budget_with_nothing_reserved() -> None:
    assert spend_findings([Spend("p", 100, 90, 0, 90), Spend("q", None, 5, 0, 5)]) == []
    found = spend_findings([Spend("p", 100, 120, 7, 60)])
    assert found == [
        "p: spent 120 nano$ but its usage rows sum to 60",
        "p: spent 120 past its budget 100",
        "p: 7 nano$ still reserved",
    ]


def test_rss_growth_from_warm_up_to_the_end() -> None:
    samples = [(0.0, 50.0), (10.0, 100.0), (40.0, 105.0), (60.0, 110.0)]
    assert rss_growth(samples, warmup_s=10) == 0.10000000000000009
    assert rss_growth(samples, warmup_s=40) is None  # 20 s after warm-up: too short to say


def test_the_section_is_replaced_between_its_markers_and_the_rest_stays() -> None:
    doc = "# Reliability\n\n## Fuzzing\n\nfigures\n"
    once = replace_section(doc, "## Crash soak\n\nfirst")
    assert once.startswith(doc.rstrip()) and once.endswith(
        f"{BEGIN}\n## Crash soak\n\nfirst\n{END}\n"
    )
    twice = replace_section(once + "\n## Later\n", "## Crash soak\n\nsecond")
    assert "first" not in twice and "second" in twice and twice.endswith("\n## Later\n")
    assert twice.count(BEGIN) == 1 and "## Fuzzing\n\nfigures" in twice
