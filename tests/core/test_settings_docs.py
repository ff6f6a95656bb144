from __future__ import annotations

from pathlib import Path

from corral.core.settings_docs import settings_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text() == settings_markdown(), "run: corral settings > docs/configuration.md"
