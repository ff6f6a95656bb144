"""Anthropic's Messages API with the official `anthropic` SDK against a live server on the
embedded model: create, stream, tools, stop sequences, token counts, the model list, bad
input in Anthropic's error shape, and a replay of Claude Code's first request."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Current time in a time zone.",
    "input_schema": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
    },
}
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def claude(live_server: LiveServer) -> anthropic.Anthropic:
    # x-api-key is sent (the server is open: any key passes, as against an open corral).
    return anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)


def test_create_names_the_snapshot_and_counts_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=24, messages=HELLO)
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model.startswith(MODEL + "-")
    assert message.content and message.content[0].type == "text"
    assert message.stop_reason in ("end_turn", "max_tokens")
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) > 5
    assert 0 < usage.output_tokens <= 24


def test_count_tokens_counts_what_create_bills(claude: anthropic.Anthropic) -> None:
    system = "You are terse."
    count = claude.messages.count_tokens(model=MODEL, system=system, messages=HELLO)
    made = claude.messages.create(model=MODEL, max_tokens=4, system=system, messages=HELLO)
    billed = made.usage.input_tokens + (made.usage.cache_read_input_tokens or 0)
    assert count.input_tokens == billed


def test_stream_text_and_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=24, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0


def test_raw_stream_events_in_the_reference_order(live_server: LiveServer) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True}
    with httpx.stream("POST", live_server.url + "/v1/messages", json=body, timeout=60) as r:
        names = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


def test_stop_sequences_are_named(claude: anthropic.Anthropic) -> None:
    prompt = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    # Greedy: the SDK of 2026 has no sampling parameters any more; corral still takes them.
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 40, "extra_body": {"temperature": 0}}
    whole = claude.messages.create(messages=prompt, **kwargs)  # type: ignore[arg-type]
    text = whole.content[0].text  # type: ignore[union-attr]
    assert "3" in text, text  # the model counts: the stop below is in what it says
    stopped = claude.messages.create(messages=prompt, stop_sequences=["3"], **kwargs)  # type: ignore[arg-type]
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "3"
    assert stopped.content[0].text == text[: text.index("3")]  # type: ignore[union-attr]
    with claude.messages.stream(messages=prompt, stop_sequences=["3"], **kwargs) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.stop_sequence == "3" and final.content[0].text == stopped.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "any", "disable_parallel_tool_use": True},
        {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
    ],
    ids=["any", "named"],
)
def test_tool_choice_always_yields_a_valid_call(
    claude: anthropic.Anthropic, choice: dict[str, Any]
) -> None:
    # Greedy: sampled at the default temperature, the 135M model may fill a free-text
    # argument until max_tokens (seen once in a full run), and a call cut short is
    # `max_tokens`, rightly, not `tool_use`.
    message = claude.messages.create(
        model=MODEL,
        max_tokens=200,
        extra_body={"temperature": 0},  # this anthropic SDK takes no `temperature` any more
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice=choice,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert message.stop_reason == "tool_use"
    calls = [b for b in message.content if b.type == "tool_use"]
    assert len(calls) == 1  # parallel use disabled
    call = calls[0]
    assert call.id.startswith("toolu_")
    if choice["type"] == "tool":
        assert call.name == "get_time" and isinstance(call.input["zone"], str)  # type: ignore[index]
    else:
        assert call.name in ("get_weather", "get_time") and call.input  # type: ignore[truthy-bool]


def test_a_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = claude.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=ask,  # type: ignore[arg-type]
    )
    call = next(b for b in first.content if b.type == "tool_use")
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}
    turns = [*ask, first.to_param(), {"role": "user", "content": [result]}]
    answer = claude.messages.create(model=MODEL, max_tokens=40, tools=[WEATHER], messages=turns)  # type: ignore[arg-type,list-item]
    assert answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert answer.content


def test_streamed_tool_input_arrives_as_json_deltas(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        pieces: dict[int, list[str]] = {}
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                pieces.setdefault(event.index, []).append(event.delta.partial_json)
        final = stream.get_final_message()
    assert pieces and all(len(p) > 1 for p in pieces.values())
    for index, parts in pieces.items():
        assert json.loads("".join(parts)) == final.content[index].input  # type: ignore[union-attr]


def test_models_list_in_anthropics_shape(claude: anthropic.Anthropic) -> None:
    models = list(claude.models.list())
    assert MODEL in [m.id for m in models] and all(m.type == "model" for m in models)
    assert claude.models.retrieve(MODEL).display_name


def test_a_fixed_32k_max_tokens_is_clamped_not_refused(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=32000,
        messages=[{"role": "user", "content": "Say hi."}],
        timeout=300,  # given, so the SDK does not refuse a long non-streamed request
        # Greedy: a sampled answer may, now and then, ramble to the window's end (minutes).
        extra_body={"temperature": 0},
    )
    assert message.stop_reason in ("end_turn", "max_tokens")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": HELLO}, "max_tokens"),
        ({"max_tokens": 8, "messages": []}, "messages"),
        ({"max_tokens": 8, "messages": HELLO, "not_a_field": 1}, "not_a_field"),
        ({"max_tokens": 8, "messages": HELLO, "container": "c"}, "container"),
        (
            {
                "max_tokens": 8,
                "messages": HELLO,
                "mcp_servers": [{"type": "url", "url": "http://169.254.169.254/", "name": "x"}],
            },
            "CORRAL_MCP__ALLOWED_URLS",
        ),
        ({"max_tokens": 8, "messages": HELLO, "temperature": 1.5}, "temperature"),
        (
            {
                "max_tokens": 8,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "url", "url": "x"}}],
                    }
                ],
            },
            "image",
        ),
        ({"max_tokens": 8, "messages": HELLO, "tool_choice": {"type": "any"}}, "tool_choice"),
        (
            {
                "max_tokens": 8,
                "messages": HELLO,
                "tools": [WEATHER],
                "tool_choice": {"type": "tool", "name": "nope"},
            },
            "nope",
        ),
        ({"max_tokens": 8, "messages": HELLO, "tools": [{"name": "x"}]}, "input_schema"),
        (
            {
                "max_tokens": 2048,
                "messages": HELLO,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "reasoning",
        ),
        ({"max_tokens": 8, "messages": HELLO, "output_config": {"task_budget": 1}}, "task_budget"),
        (
            {
                "max_tokens": 8,
                "messages": HELLO,
                "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            },
            "clear_tool_uses",
        ),
        ({"max_tokens": 8, "messages": HELLO, "metadata": {"tenant": "x"}}, "tenant"),
        (
            {
                "max_tokens": 8,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": "x", "signature": "forged"}],
                    },
                    *HELLO,
                ],
            },
            "verified",
        ),
        ({"max_tokens": 8, "messages": [{"role": "user", "content": "x " * 40_000}]}, "context"),
    ],
)
def test_bad_input_is_a_400_in_anthropics_shape(
    live_server: LiveServer, body: dict[str, Any], fragment: str
) -> None:
    r = httpx.post(live_server.url + "/v1/messages", json={"model": MODEL, **body}, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"], error


def test_unknown_model_and_route_are_404s_in_anthropics_shape(live_server: LiveServer) -> None:
    body = {"model": "no-such-model", "max_tokens": 8, "messages": HELLO}
    r = httpx.post(live_server.url + "/v1/messages", json=body, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.get(live_server.url + "/v1/messages/batches/nope", timeout=30)
    assert r.status_code == 404 and r.json()["type"] == "error"


def _tool(name: str, what: str, **properties: str) -> dict[str, Any]:
    props = {k: {"type": v, "description": k} for k, v in properties.items()}
    schema = {"type": "object", "properties": props, "required": list(properties)}
    return {"name": name, "description": what, "input_schema": schema}


# Claude Code 2.1's first request, its shapes as sent and its text trimmed to fit the
# embedded model's window: system blocks with cache_control, a system turn inside
# `messages`, twelve client tools and a server tool, adaptive thinking with effort on a
# model without reasoning, context management, a 32,000 max_tokens, metadata.user_id.
CLAUDE_CODE_TOOLS = [
    _tool("Bash", "Run a shell command.", command="string", timeout="number"),
    _tool("Glob", "Find files by pattern.", pattern="string"),
    _tool("Grep", "Search file contents.", pattern="string", path="string"),
    _tool("Read", "Read a file.", file_path="string"),
    _tool("Edit", "Replace text in a file.", file_path="string", old="string", new="string"),
    _tool("Write", "Write a file.", file_path="string", content="string"),
    _tool("NotebookEdit", "Edit a notebook cell.", notebook_path="string", source="string"),
    _tool("WebFetch", "Fetch a URL.", url="string", prompt="string"),
    _tool("TodoWrite", "Update the todo list.", todos="string"),
    _tool("Task", "Start a sub-agent.", description="string", prompt="string"),
    _tool("BashOutput", "Read a background shell's output.", bash_id="string"),
    _tool("KillShell", "Stop a background shell.", shell_id="string"),
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
]
CACHED = {"type": "ephemeral"}
CLAUDE_CODE_FIRST_REQUEST: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": CACHED},
        {"type": "text", "text": "You are an interactive CLI tool.", "cache_control": CACHED},
        {"type": "text", "text": "Answer in one short sentence.", "cache_control": CACHED},
    ],
    "messages": [
        {"role": "system", "content": "<system-reminder>Today is 2026-11-30.</system-reminder>"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>cwd: /home/user/p</system-reminder>"},
                {"type": "text", "text": "Say hello.", "cache_control": CACHED},
            ],
        },
    ],
    "tools": CLAUDE_CODE_TOOLS,
    "metadata": {"user_id": json.dumps({"device_id": "d1", "session_id": "s1"})},
    "thinking": {"type": "adaptive", "display": "omitted"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    # Not Claude Code's: greedy, so the answer's length is fixed (a sampled one may, now
    # and then, ramble on to the clamped 6,000-token limit: minutes on two cores).
    "temperature": 0,
}
CLAUDE_CODE_HEADERS = {
    "x-api-key": "sk-ant-unused",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": (
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
        "advanced-tool-use-2025-11-20,effort-2025-11-24"
    ),
}


def test_a_claude_code_first_request_streams_to_message_stop(live_server: LiveServer) -> None:
    url = live_server.url + "/v1/messages?beta=true"
    body, headers = CLAUDE_CODE_FIRST_REQUEST, CLAUDE_CODE_HEADERS
    with httpx.stream("POST", url, json=body, headers=headers, timeout=300) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["x-corral-tools-ignored"] == "web_search_20250305"
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] in ("end_turn", "tool_use", "max_tokens")
    # "Say hello." names none of the tools: none is offered (docs/api.md, "Tools"), so the
    # prompt is the system blocks and turns alone.
    assert delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"] > 30
