"""Completions and embeddings against the real engine."""

from __future__ import annotations

import math

import numpy as np
import openai
import pytest

from tests.conftest import MODEL, MODEL_SNAPSHOT

pytestmark = pytest.mark.slow


def test_completion(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=5)
    assert r.object == "text_completion"
    assert r.model == MODEL_SNAPSHOT
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens <= 5


def test_completion_prompt_list_and_echo(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model=MODEL, prompt=["One, two,", "Red, green,"], max_tokens=4, echo=True, seed=1
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text.startswith("One, two,")
    assert r.choices[1].text.startswith("Red, green,")


def test_completion_stream(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=MODEL,
        prompt="Once upon a time",
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        text += "".join(c.text for c in chunk.choices)
    assert text
    assert usage is not None and usage.completion_tokens == 8


def test_completion_logprobs(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="Hello", max_tokens=3, logprobs=2)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == 3


def test_suffix_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="def f(", suffix="return x", max_tokens=4)
    assert err.value.body["param"] == "suffix"  # type: ignore[index]


def test_embeddings_float_and_base64_agree(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model=MODEL, input=["a cat", "a dog", "quantum physics"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1, 2]
    dims = {len(d.embedding) for d in floats.data}
    assert dims == {576}
    # The SDK asks for base64 by default and decodes it.
    b64 = client.embeddings.create(model=MODEL, input=["a cat", "a dog", "quantum physics"])
    for a, b in zip(floats.data, b64.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
    v = [np.array(d.embedding) for d in floats.data]

    def cos(x: np.ndarray, y: np.ndarray) -> float:
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))

    assert cos(v[0], v[1]) > cos(v[0], v[2])
    assert floats.usage.prompt_tokens > 0
    assert not any(math.isnan(x) for x in floats.data[0].embedding)


def test_embedding_single_string(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    assert len(r.data) == 1 and r.model == MODEL_SNAPSHOT


def test_dimensions_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=MODEL, input="hello", dimensions=64)
    assert err.value.body["param"] == "dimensions"  # type: ignore[index]
