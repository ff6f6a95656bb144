from __future__ import annotations

import time

import orjson
import pytest

from corral.core.jsondepth import MAX_DEPTH, nested_deeper


@pytest.mark.parametrize("depth", [0, 1, 2, MAX_DEPTH - 1, MAX_DEPTH])
def test_within_the_limit(depth: int) -> None:
    assert not nested_deeper(b"[" * depth + b"]" * depth)
    value: object = 1
    for _ in range(depth - 1):
        value = {"x": value}
    assert not nested_deeper(orjson.dumps([value] if depth else 1))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_over_the_limit(depth: int) -> None:
    assert nested_deeper(b'{"a":' * depth + b"1" + b"}" * depth)
    assert nested_deeper(b"[" * depth + b"]" * depth)


def test_brackets_in_strings_do_not_count() -> None:
    text = b'{"a": "' + b"[{" * 1000 + b'\\"]]", "b": [1, {"c": "}}}"}]}'
    assert not nested_deeper(text)
    assert nested_deeper(b"[" * 200 + b'"\\"' + b"]" * 200)  # an escaped quote, then depth


def test_not_json_is_left_to_the_parser() -> None:
    assert not nested_deeper(b"[" * 100 + b"}" * 100)
    assert not nested_deeper(b"{nope")


def test_a_large_flat_body_is_scanned_cheaply() -> None:
    raw = b"[" + b"[1, 2, 3]," * 400_000 + b"[]]"  # 4 MB
    start = time.perf_counter()
    assert not nested_deeper(raw)
    assert time.perf_counter() - start < 2.0
