"""A pulled model's store path is built from the catalog's names only and never leaves
the store, whatever names the catalog's patterns let through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from corral.catalog.schema import HubSource, store_path

STORE = Path("/srv/corral/models")
REPO = HubSource.model_fields["repo"].metadata[0].pattern
FILE = HubSource.model_fields["file"].metadata[0].pattern


@settings(max_examples=300, deadline=None)
@given(repo=st.from_regex(REPO, fullmatch=True), file=st.from_regex(FILE, fullmatch=True))
def test_every_valid_hub_source_stays_in_the_store(repo: str, file: str) -> None:
    try:  # Python's \w is wider than the validator's: what it refuses is out of scope
        source = HubSource(repo=repo, file=file)
    except ValidationError:
        assume(False)
    resolved = Path(os.path.normpath(store_path(STORE, source)))
    assert resolved.parent.parent == STORE and resolved.name == file


@pytest.mark.parametrize(
    ("repo", "file"),
    [
        ("../x", "m.gguf"),
        ("a/b/../../c", "m.gguf"),
        ("/etc/b", "m.gguf"),
        ("a/b", "../m.gguf"),
        ("a/b", "sub/m.gguf"),
        ("a/b", "..\\m.gguf"),
        ("a/b", ".gguf"),
    ],
)
def test_traversal_names_are_refused(repo: str, file: str) -> None:
    with pytest.raises(ValidationError):
        HubSource(repo=repo, file=file)
