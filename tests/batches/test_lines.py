"""A batch's input file read line by line, and the batch price point."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from corral.accounts.accounting import cost_nano
from corral.batches.lines import parse_lines
from corral.catalog.schema import ModelSpec

URL = "/v1/embeddings"


def row(custom_id: str) -> str:
    body = {"model": "m", "input": "x"}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": URL, "body": body})


def test_blank_lines_are_skipped_and_errors_name_the_files_line() -> None:
    data = "\n".join([row("a"), "", row("b"), "   ", "{", row("a")]).encode()
    lines, errors = parse_lines(data, URL, 10)
    assert [(x.index, x.number, x.custom_id) for x in lines] == [(0, 1, "a"), (1, 3, "b")]
    assert [(e.line, e.code) for e in errors] == [
        (5, "invalid_json_line"),
        (6, "duplicate_custom_id"),
    ]


def test_a_line_nested_past_the_limit_is_refused_before_parsing() -> None:
    body = '{"model": "m", "input": ' + "[" * 900 + "]" * 900 + "}"
    deep = f'{{"custom_id": "d", "method": "POST", "url": "{URL}", "body": {body}}}'
    lines, errors = parse_lines("\n".join([row("a"), deep]).encode(), URL, 10)
    assert [x.custom_id for x in lines] == ["a"]
    assert [(e.line, e.code) for e in errors] == [(2, "invalid_json_line")]


def test_too_many_lines_and_an_empty_file() -> None:
    data = "\n".join(row(str(i)) for i in range(4)).encode()
    assert parse_lines(data, URL, 3)[1][0].code == "too_many_requests"
    assert parse_lines(b"\n\n", URL, 3)[1][0].code == "empty_file"


def test_the_batch_price_point_defaults_to_half() -> None:
    spec = ModelSpec(
        id="m", path=Path("/x"), owned_by="t", description="",
        price_input_per_m=2.0, price_cached_input_per_m=1.0, price_output_per_m=4.0,
    )  # fmt: skip
    # 1K tokens each way at (2/2 + 4/2) USD per 1M: 0.003 USD, in nano-dollars
    assert cost_nano(spec, 1000, 500, 1000, batch=True) == 3_000_000
    priced = replace(spec, price_batch_input_per_m=0.2, price_batch_output_per_m=0.4)
    assert cost_nano(priced, 1000, 0, 1000, batch=True) == 600_000
