from __future__ import annotations

from pathlib import Path

from corral.storage.db import Database
from corral.storage.epoch import Epoch


def test_tokens_change_on_every_bump_and_survive_deletion(tmp_path: Path) -> None:
    epoch = Epoch(tmp_path / "x.epoch")
    first = epoch.read()
    assert first is not None and first == epoch.read()
    assert epoch.bump()
    second = epoch.read()
    assert second not in (None, first)
    (tmp_path / "x.epoch").unlink()
    assert epoch.read() not in (None, first, second)
    assert [p.name for p in tmp_path.iterdir()] == ["x.epoch"]  # no temporary files left


def test_unreadable_tokens_forbid_caching(tmp_path: Path) -> None:
    (tmp_path / "bad.epoch").write_bytes(b"short")
    assert Epoch(tmp_path / "bad.epoch").read() is None
    assert Epoch(tmp_path / "missing-dir" / "x.epoch").read() is None


def test_only_a_database_file_has_epochs(tmp_path: Path) -> None:
    assert Database(f"sqlite:///{tmp_path}/d.db").epoch("auth") is not None
    assert Database("sqlite:///:memory:").epoch("auth") is None
    assert Database("postgresql://u@127.0.0.1/test").epoch("auth") is None
