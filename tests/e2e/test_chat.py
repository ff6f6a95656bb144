"""Chat completions against the real engine on the embedded model, with the openai SDK."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import MODEL, MODEL_SNAPSHOT
from tests.e2e.conftest import SYSTEM

pytestmark = pytest.mark.slow


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def test_plain_chat(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=ask("Say hello."), max_tokens=12, seed=1
    )
    assert r.object == "chat.completion"
    assert r.model == MODEL_SNAPSHOT
    assert r.system_fingerprint and r.system_fingerprint.startswith("fp_")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.prompt_tokens > 5
    assert 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_text_parts_and_developer_role(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Name a color."}]},
        ],
        max_completion_tokens=8,
    )
    assert r.choices[0].message.content


def test_streamed_chat_matches_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask("Count to five."),
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        assert chunk.model == MODEL_SNAPSHOT
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces)
    assert finish in ("stop", "length")
    assert usage is not None and 0 < usage.completion_tokens <= 16


def test_same_seed_same_output(client: openai.OpenAI) -> None:
    def run(seed: int) -> str:
        r = client.chat.completions.create(
            model=MODEL,
            messages=ask("Tell me a story."),
            max_tokens=24,
            seed=seed,
            temperature=1.0,
        )
        return r.choices[0].message.content or ""

    first = run(42)
    assert run(42) == first
    assert any(run(s) != first for s in (7, 8, 9))


def test_n_two_choices_and_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=ask("Tell me a story."),
        max_tokens=8,
        n=2,
        seed=5,
        extra_body={"ignore_eos": True},
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content != r.choices[1].message.content
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage is not None
    assert r.usage.completion_tokens == 16  # both choices are billed


def test_n_two_streamed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask("Hi"),
        max_tokens=6,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    texts = {0: "", 1: ""}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0] and texts[1]
    assert usage is not None and usage.completion_tokens == 12


def test_stop_string(client: openai.OpenAI) -> None:
    def run(**extra: object) -> tuple[str, str | None]:
        r = client.chat.completions.create(
            model=MODEL,
            messages=ask("Count from 1 to 10."),
            max_tokens=40,
            temperature=0,
            **extra,  # type: ignore[arg-type]
        )
        return r.choices[0].message.content or "", r.choices[0].finish_reason

    text, _ = run()
    stop = text[len(text) // 2 : len(text) // 2 + 2]  # something the model is sure to write
    assert len(stop) == 2, text
    stopped, finish = run(stop=["<never>", stop])
    assert stopped == text[: text.index(stop)]
    assert finish == "stop"


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},  # bounded: always ends in time
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_is_valid(client: openai.OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=ask("Describe a person as JSON."),
        max_tokens=120,
        seed=seed,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
    )
    data = json.loads(r.choices[0].message.content or "")
    jsonschema.validate(data, PERSON)


def test_json_object_output(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        # An open-ended object let the small model nest keys until max_tokens when the
        # engine's batch and cache state changed its greedy path (CI saw `length` once);
        # one it can copy finishes in 7 tokens whatever ran before (12 of 12 tries).
        messages=ask('Reply with exactly this JSON object and nothing else: {"name": "Tom"}'),
        max_tokens=300,
        response_format={"type": "json_object"},
        temperature=0,
    )
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=ask("Hi"),
        max_tokens=5,
        logprobs=True,
        top_logprobs=3,
        extra_body={"ignore_eos": True},
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content
    # One entry a token is OpenAI's contract; with the engine's n-gram drafts (on by
    # default) llama.cpp leaves out or zeroes an accepted draft's entry (docs/api.md,
    # "Known gap"): seen once, 3 entries for 5 tokens.
    assert len(lp.content) <= r.usage.completion_tokens  # type: ignore[union-attr]
    for token in lp.content:
        assert token.logprob <= 0
        assert len(token.top_logprobs) == 3
        assert token.top_logprobs[0].logprob >= token.top_logprobs[-1].logprob
