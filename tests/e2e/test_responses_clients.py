"""Clients that speak the Responses API by default, against a live server on the
embedded model: the OpenAI Agents SDK and LangChain's ChatOpenAI(use_responses_api=True)."""

from __future__ import annotations

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from langchain_openai import ChatOpenAI

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(live_server: LiveServer) -> OpenAIResponsesModel:
    set_tracing_disabled(True)  # no traces leave for OpenAI's servers
    client = openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="unused")
    return OpenAIResponsesModel(model=MODEL, openai_client=client)


async def test_an_agent_calls_its_function_tool(model: OpenAIResponsesModel) -> None:
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        cities.append(city)
        return f"Sunny, 21 C in {city}"

    # The embedded model would call the tool again and again if asked to go on; the agent
    # ends with the tool's result, which the SDK took from the model's function call.
    agent = Agent(
        name="weather",
        instructions="Use the tool.",
        tools=[get_weather],
        model=model,
        model_settings=ModelSettings(tool_choice="required"),
        tool_use_behavior="stop_on_first_tool",
    )
    result = await Runner.run(agent, "What is the weather in Paris?", max_turns=3)
    assert cities and result.final_output == f"Sunny, 21 C in {cities[0]}"


async def test_an_agent_answers_and_streams(model: OpenAIResponsesModel) -> None:
    # Greedy: sampled, the small model once rambled past its output limit, and the SDK
    # raises on a response that ends `incomplete`. Greedy, both runs give the answer
    # that ends.
    agent = Agent(
        name="plain",
        instructions="You are a helpful assistant.",
        model=model,
        model_settings=ModelSettings(temperature=0, max_tokens=64),
    )
    result = await Runner.run(agent, "Say hello.", max_turns=2)
    assert isinstance(result.final_output, str) and result.final_output
    run = Runner.run_streamed(agent, "Say hello.", max_turns=2)
    kinds = [event.type async for event in run.stream_events()]
    assert run.final_output and "raw_response_event" in kinds


def test_langchain_chat_openai_on_the_responses_api(live_server: LiveServer) -> None:
    llm = ChatOpenAI(
        model=MODEL,
        base_url=live_server.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        use_responses_api=True,
        max_tokens=24,  # type: ignore[call-arg]
    )
    message = llm.invoke("Say hello.")
    assert message.text and message.response_metadata["model_name"].startswith(MODEL)
    chunks = list(llm.stream("Count to three."))
    assert "".join(c.text for c in chunks)
