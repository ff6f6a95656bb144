"""Python graders run sandboxed: no network, no corral files, bounded time and memory.
Skipped (with the reason) only where bubblewrap cannot make a sandbox: there the API
refuses python graders instead (tests/evals/test_definitions.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.evals.sandbox import Limits, PythonSandbox, SandboxError


@pytest.fixture
async def sandbox() -> AsyncIterator[PythonSandbox]:
    box = PythonSandbox(Limits(cpu_s=2, memory_mib=256, timeout_s=10))
    reason = await box.unavailable()
    if reason is not None:
        pytest.skip(f"python graders are refused on this machine: {reason}")
    yield box


async def test_a_grader_scores_the_sample(sandbox: PythonSandbox) -> None:
    source = (
        "def grade(sample, item):\n"
        "    return 1.0 if sample['output_text'].strip() == item['answer'] else 0.25\n"
    )
    assert await sandbox.grade(source, {"output_text": " 4 "}, {"answer": "4"}) == 1.0
    assert await sandbox.grade(source, {"output_text": "5"}, {"answer": "4"}) == 0.25


async def test_no_network_not_even_the_hosts_loopback(sandbox: PythonSandbox) -> None:
    # PostgreSQL listens on the host's 127.0.0.1:5432 while the tests run.
    source = (
        "import socket\n"
        "def grade(sample, item):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 5432), timeout=2)\n"
        "        return 1.0\n"
        "    except OSError:\n"
        "        return 0.0\n"
    )
    assert await sandbox.grade(source, {}, {}) == 0.0


async def test_corral_files_are_not_there(sandbox: PythonSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text("s3cret")
    source = (
        "import os\n"
        "def grade(sample, item):\n"
        "    seen = os.path.exists(item['path']) or os.path.exists('/etc/passwd')\n"
        "    seen = seen or os.path.exists(os.path.expanduser('~/.local/share/corral'))\n"
        "    return 1.0 if seen else 0.0\n"
    )
    assert await sandbox.grade(source, {}, {"path": str(secret)}) == 0.0


async def test_the_environment_is_not_passed_on(
    sandbox: PythonSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_ADMIN_KEY", "sk-admin-very-secret")
    source = (
        "import os\n"
        "def grade(sample, item):\n"
        "    return 1.0 if 'sk-admin-very-secret' in repr(dict(os.environ)) else 0.0\n"
    )
    assert await sandbox.grade(source, {}, {}) == 0.0


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("def grade(sample, item):\n    while True:\n        pass\n", ""),
        ("def grade(sample, item):\n    x = bytearray(1 << 30)\n    return 1\n", "MemoryError"),
        ("x = 1\n", "no grade(sample, item) function"),
        ("def grade(sample, item):\n    return 'high'\n", "ValueError"),
        ("def grade(sample, item):\n    raise RuntimeError('boom')\n", "boom"),
    ],
)
async def test_what_goes_wrong_is_an_error(sandbox: PythonSandbox, source: str, says: str) -> None:
    with pytest.raises(SandboxError) as err:
        await sandbox.grade(source, {}, {})
    assert says in str(err.value)
