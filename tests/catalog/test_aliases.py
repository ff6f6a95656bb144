"""Operators' alias pins: how the catalog follows them, and their storage (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from corral.catalog.aliases import AliasPins
from corral.catalog.schema import Catalog, Pin, load_catalog
from corral.core.errors import InvalidRequestError
from corral.storage.db import Database, upgrade

CATALOG = """version: 1
families:
  - id: tiny
    name: Tiny
    owner: tests
    description: Two snapshots of one model.
    context_window: 2048
    capabilities: [chat]
    pricing: {input: 1, cached_input: 1, output: 1}
    snapshots:
      - id: tiny-2024-01-01
        stages: {active: 2024-01-01}
        source: {path: /nonexistent/a.gguf}
      - id: tiny-2025-01-01
        stages: {preview: 2025-01-01}
        source: {path: /nonexistent/b.gguf}
      - id: tiny-2023-01-01
        stages: {active: 2023-01-01, deprecated: 2023-06-01, shutdown: 2024-06-01}
        replacement: tiny-2024-01-01
        source: {path: /nonexistent/c.gguf}
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    cat = load_catalog(path)
    cat.today = lambda: date(2025, 6, 1)
    return cat


def test_a_pin_moves_the_alias_from_its_day(catalog: Catalog) -> None:
    assert catalog.target("tiny").id == "tiny-2024-01-01"  # type: ignore[union-attr]
    catalog.pins = {"tiny": Pin("tiny", "tiny-2025-01-01", date(2025, 5, 1))}
    assert catalog.target("tiny").id == "tiny-2025-01-01"  # type: ignore[union-attr]
    assert catalog.target("tiny", date(2025, 4, 30)).id == "tiny-2024-01-01"  # type: ignore[union-attr]
    assert catalog.resolve("tiny").snapshot.id == "tiny-2025-01-01"  # type: ignore[union-attr]


def test_what_cannot_be_pinned(catalog: Catalog) -> None:
    assert catalog.pinnable("tiny", "tiny-2025-01-01") is None
    assert "not an alias" in (catalog.pinnable("nope", "tiny-2025-01-01") or "")
    assert "not a snapshot of" in (catalog.pinnable("tiny", "other") or "")
    assert "shutdown" in (catalog.pinnable("tiny", "tiny-2023-01-01") or "")
    # a pin whose snapshot has since shut down is ignored, never served
    catalog.pins = {"tiny": Pin("tiny", "tiny-2023-01-01", date(2023, 1, 1))}
    assert catalog.target("tiny").id == "tiny-2024-01-01"  # type: ignore[union-attr]


async def test_pins_are_stored_and_undone(catalog: Catalog, db_url: str) -> None:
    upgrade(db_url)
    db = Database(db_url)
    pins = AliasPins(db)
    try:
        with pytest.raises(InvalidRequestError):
            await pins.pin(catalog, "tiny", "tiny-2023-01-01", "no")
        previous = await pins.pin(catalog, "tiny", "tiny-2025-01-01", "eval passed")
        assert previous == "tiny-2024-01-01"
        loaded = await pins.load()
        assert loaded["tiny"].snapshot_id == "tiny-2025-01-01"
        catalog.pins = loaded
        assert catalog.target("tiny").id == "tiny-2025-01-01"  # type: ignore[union-attr]
        assert await pins.unpin("tiny") and not await pins.unpin("tiny")
        assert await pins.load() == {}
    finally:
        await db.close()
