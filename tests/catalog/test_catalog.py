"""The catalog: the shipped file, validation with line numbers, aliases, the 3-month rule."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from corral.catalog.schema import CatalogError, add_months, load_catalog

TODAY = date(2026, 6, 1)

FAMILY = """\
version: 1
families:
  - id: tiny
    name: Tiny
    owner: test
    description: A tiny model.
    context_window: 2048
    capabilities: [chat, completions]
    pricing: {input: 1.0, output: 2.0}
    latest_alias: tiny-latest
    snapshots:
"""


def write(tmp_path: Path, snapshots: str, head: str = FAMILY) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(head + textwrap.indent(textwrap.dedent(snapshots), "      "))
    return path


def load(path: Path):  # type: ignore[no-untyped-def]
    return load_catalog(path, shipped=False, today=lambda: TODAY)


def test_shipped_catalog_loads_with_the_real_models() -> None:
    catalog = load_catalog(today=lambda: TODAY)
    assert catalog.resolve("llama3.1-8b").snapshot.id == "llama3.1-8b-2024-07-23"  # type: ignore[union-attr]
    assert catalog.target("llama-70b-latest").id == "llama3.3-70b-2024-12-06"  # type: ignore[union-attr]
    flagship = [s for s in catalog.snapshots.values() if s.family.flagship]
    assert [s.id for s in flagship] == ["llama3.1-8b-2024-07-23"]
    for wanted in (
        "llama3.1-70b-2024-07-23",
        "llama3.1-405b-2024-07-23",
        "deepseek-r1-distill-llama-70b-2025-01-20",
        "deepseek-r1-distill-llama-8b-2025-01-20",
        "smollm2-135m-instruct-2024-11-01",
    ):
        assert wanted in catalog.snapshots
    reasoning = [s.id for s in catalog.snapshots.values() if "reasoning" in s.capabilities]
    assert len(reasoning) == 2
    spec = catalog.spec(catalog.snapshots["llama3.1-8b-2024-07-23"], Path("/store"))
    assert spec.price_input_per_m > 0 and spec.price_output_per_m > spec.price_input_per_m
    assert spec.context_window == 131072 and spec.source == "hf"
    assert spec.path == Path(
        "/store/bartowski--Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    )
    assert catalog.snapshots["llama3.1-70b-2024-07-23"].state(TODAY) == "deprecated"


def test_aliases_resolve_by_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        - id: tiny-2025-01-01
          stages: {active: 2025-01-01, deprecated: 2026-05-01, shutdown: 2026-09-01}
          replacement: tiny
          source: {path: a.gguf}
        - id: tiny-2026-05-01
          stages: {active: 2026-05-01}
          source: {path: a.gguf}
        - id: tiny-2026-05-20
          stages: {preview: 2026-05-20}
          source: {path: a.gguf}
        """,
    )
    catalog = load(path)
    assert catalog.target("tiny").id == "tiny-2026-05-01"  # type: ignore[union-attr]
    assert catalog.target("tiny-latest").id == "tiny-2026-05-20"  # type: ignore[union-attr]
    assert catalog.target("tiny", date(2025, 6, 1)).id == "tiny-2025-01-01"  # type: ignore[union-attr]
    history = [(m.since, m.snapshot) for m in catalog.history("tiny")]
    assert history == [(date(2025, 1, 1), "tiny-2025-01-01"), (date(2026, 5, 1), "tiny-2026-05-01")]
    assert catalog.aliases_of("tiny-2026-05-01") == ["tiny"]
    assert catalog.replacement_of(catalog.snapshots["tiny-2025-01-01"]) == "tiny-2026-05-01"
    assert [s.id for s in catalog.deprecations()] == ["tiny-2025-01-01"]
    assert catalog.resolve("nope") is None


def test_three_month_rule_refuses_an_early_shutdown(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        - id: tiny-2025-01-01
          stages: {active: 2025-01-01, deprecated: 2026-05-01, shutdown: 2026-07-31}
          replacement: tiny-2026-05-01
          source: {path: a.gguf}
        - id: tiny-2026-05-01
          stages: {active: 2026-05-01}
          source: {path: a.gguf}
        """,
    )
    with pytest.raises(CatalogError) as err:
        load(path)
    message = str(err.value)
    # the line of the `stages:` mapping that holds the shutdown date
    assert message.startswith(f"{path}:13: families.0.snapshots.0.stages.shutdown:"), message
    assert "less than 3 months" in message and "earliest allowed shutdown is 2026-08-01" in message
    path.write_text(path.read_text().replace("2026-07-31", "2026-08-01"))
    assert load(path).snapshots["tiny-2025-01-01"].stages.shutdown == date(2026, 8, 1)


def snap(stages: str, source: str = "{path: a.gguf}", extra: str = "", id_: str = "tiny-1") -> str:
    return f"- id: {id_}\n  stages: {stages}\n  source: {source}\n{extra}"


@pytest.mark.parametrize(
    ("snapshots", "line", "needle"),
    [
        (snap("{active: 2025-01-01}", extra="  colour: red\n"), 15, "colour: Extra inputs"),
        (snap("{active: 2025-13-01}"), 13, "invalid date"),
        (snap("{active: 2025-01-01}", "{path: a, hf: {repo: a/b, file: x.gguf}}"), 14, "one of"),
        (snap("{active: 2025-01-01}", "{hf: {repo: a/b, file: ../x.gguf}}"), 14, "file"),
        (snap("{active: 2025-01-01, deprecated: 2025-02-01}"), 13, "needs a `replacement`"),
        (snap("{active: 2025-03-01, deprecated: 2025-02-01}"), 13, "comes before"),
        (snap("{active: 2025-01-01}", id_="tiny"), 12, "both a snapshot id and an alias"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, snapshots: str, line: int, needle: str) -> None:
    path = write(tmp_path, snapshots)
    with pytest.raises(CatalogError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:{line}:"), str(err.value)
    assert needle in str(err.value)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nfamilies:\n  - id: [unclosed\n")
    with pytest.raises(CatalogError, match=rf"^{path}:4: not valid YAML"):
        load(path)


def test_operator_file_overrides_and_adds(tmp_path: Path) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            families:
              - id: llama3.1-8b
                name: Llama 3.1 8B (ours)
                owner: meta
                description: Our price.
                context_window: 131072
                capabilities: [chat]
                pricing: {input: 0.5, output: 0.5}
                snapshots:
                  - id: llama3.1-8b-2024-07-23
                    stages: {active: 2024-07-23}
                    source: {path: /models/llama.gguf}
            """
        )
    )
    catalog = load_catalog(path, today=lambda: TODAY)
    snap = catalog.snapshots["llama3.1-8b-2024-07-23"]
    assert snap.pricing.input == 0.5 and snap.family.name == "Llama 3.1 8B (ours)"
    assert snap.source.path == "/models/llama.gguf"
    assert "smollm2-135m-instruct-2024-11-01" in catalog.snapshots


def test_add_months() -> None:
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)
    assert add_months(date(2024, 12, 6), 3) == date(2025, 3, 6)
