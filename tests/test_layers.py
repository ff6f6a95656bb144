"""The layer contract in pyproject.toml (checked by `make lint` with import-linter):
it covers every package, holds on the tree, and fails on an import that runs upward."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "corral"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    # Run from the copy's root, with the copy first on the path, so the graph is its own.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(ROOT / "pyproject.toml")],
        cwd=src.parent,
        env={"PYTHONPATH": str(src.parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_package_is_in_a_layer() -> None:
    packages = {
        f"corral.{p.stem if p.is_file() else p.name}"
        for p in SRC.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem not in {"__init__", "__main__"})
    }
    assert packages - set(_layers()) == set()


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"import-linter is a dev dependency; {LINT_IMPORTS} is missing")
    dest = tmp_path_factory.mktemp("tree") / "corral"
    shutil.copytree(SRC, dest, ignore=shutil.ignore_patterns("__pycache__", "*.gguf"))
    return dest


def test_the_tree_keeps_the_contract(copy: Path) -> None:
    result = _lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("engines/base.py", "corral.api.errors"),  # engines -> anything above
        ("catalog/registry.py", "corral.tuning.jobs"),  # catalog -> tuning
        ("tuning/worker.py", "corral.app"),  # a job -> the composition root
        ("core/ids.py", "corral.storage.db"),  # core imports nothing of corral
        ("tuning/data.py", "corral.evals.runner"),  # siblings stay independent
    ],
)
def test_an_upward_import_breaks_it(copy: Path, module: str, upward: str) -> None:
    target = copy / module
    original = target.read_text()
    try:
        target.write_text(original + f"\nimport {upward}  # noqa\n")
        result = _lint(copy)
    finally:
        target.write_text(original)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and upward in result.stdout
