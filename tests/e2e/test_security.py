"""The engine's own listener stays closed; hostile chat templates cannot run code."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from corral.catalog.schema import embedded_model_path
from corral.core.config import EngineSettings
from corral.engines.llamacpp import LlamaCppEngine
from tests.fakes import local_info

pytestmark = pytest.mark.slow

HOSTILE = [
    "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(['touch', 'MARKER']) }}{% endif %}{% endfor %}",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    # CVE-2024-34359 (llama-cpp-python rendered GGUF templates with an unsandboxed jinja2)
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == '_wrap_close' %}"
    "{{ c.__init__.__globals__['popen']('touch MARKER').read() }}{% endif %}{% endfor %}",
]


async def test_engine_listener_refuses_without_its_key(tmp_path: Path) -> None:
    one = EngineSettings(n_parallel=1)
    engine = LlamaCppEngine(embedded_model_path(), one, local_info(one))
    await engine.start()
    try:
        async with httpx.AsyncClient(base_url=engine.listening_address) as http:
            for path in ("/v1/models", "/slots", "/props"):
                assert (await http.get(path)).status_code == 401
            r = await http.post("/v1/chat/completions", json={"messages": []})
            assert r.status_code == 401
            r = await http.post(
                "/completion",
                json={"prompt": "x"},
                headers={"Authorization": "Bearer guessed"},
            )
            assert r.status_code == 401
    finally:
        await engine.close()


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_template_runs_no_code(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    settings = EngineSettings(n_parallel=1, chat_template=template.replace("MARKER", str(marker)))
    try:
        engine = LlamaCppEngine(embedded_model_path(), settings, local_info(settings))
        await engine.start()
    except Exception:
        assert not marker.exists()
        return  # refusing to load the template is a safe outcome too
    try:
        with contextlib.suppress(Exception):  # an error is fine; running code is not
            await engine.chat({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert not marker.exists()
    finally:
        await engine.close()
