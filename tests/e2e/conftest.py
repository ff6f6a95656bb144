from __future__ import annotations

import openai
import pytest

from tests.conftest import LiveServer

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}


@pytest.fixture(scope="session")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def aclient(live_server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)
