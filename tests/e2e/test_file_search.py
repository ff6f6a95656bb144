"""The Responses `file_search` tool with the official `openai` SDK against a live server
on the embedded model: corral searches the caller's vector store when the model calls
for it, says a `file_search_call` item (its results when included), and the answer cites
the files found; whole and streamed; a store that is not the caller's is a 404 before
anything runs. And the OpenAI Agents SDK's `FileSearchTool` run to an answer."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from agents import (
    Agent,
    FileSearchTool,
    MessageOutputItem,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    ToolCallItem,
    set_tracing_disabled,
)
from openai.types.responses import ResponseFileSearchToolCall
from pydantic import BaseModel, Field

from tests.conftest import MODEL, LiveServer
from tests.e2e.test_vector_stores import indexed, upload

pytestmark = pytest.mark.slow

DOCS = {
    "vpn.txt": "To reach the internal network from home, install the VPN client and sign "
    "in with the code ZX-9042 from your token.",
    "cafeteria.md": "The staff cafeteria serves lunch every weekday from noon until two.",
}


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def store(client: openai.OpenAI) -> tuple[str, dict[str, str]]:
    ids = upload(client, DOCS)
    made = client.vector_stores.create(name="handbook", file_ids=list(ids.values()))
    assert indexed(client, made).status == "completed"
    return made.id, ids


def ask(store_id: str, **extra: Any) -> dict[str, Any]:
    """A request the 135M model answers with a search: the tool is forced (left to
    choose, so small a model seldom calls it), both files fit the results, and the
    output budget holds a call of two long queries (digits are a token each: a made-up
    URL took ~70) and an answer after it."""
    return {
        "model": MODEL,
        "input": "What code do I sign in to the VPN with?",
        "tools": [{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
        "tool_choice": {"type": "file_search"},
        "include": ["file_search_call.results"],
        "max_output_tokens": 256,
        "temperature": 0,
        **extra,
    }


def test_a_whole_answer_searches_then_answers_citing_the_files(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    store_id, files = store
    response = client.responses.create(**ask(store_id))
    search = response.output[0]
    assert search.type == "file_search_call" and search.status == "completed"
    assert search.queries and all(q.strip() for q in search.queries)
    assert search.results is not None
    assert {r.file_id for r in search.results} == set(files.values())  # both, ranked
    assert all(r.filename in DOCS and r.text and 0 < (r.score or 0) <= 1 for r in search.results)
    message = response.output[-1]
    assert message.type == "message" and response.output_text
    cited = {a.file_id for a in message.content[0].annotations if a.type == "file_citation"}
    assert cited == set(files.values())
    assert response.usage is not None and response.usage.output_tokens > 0
    # The next turn replays the search item in its history.
    follow = client.responses.create(
        model=MODEL, previous_response_id=response.id, input="Thanks.", max_output_tokens=8
    )
    assert follow.status in ("completed", "incomplete")


def test_a_streamed_search_says_its_events_in_order(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    with client.responses.stream(**ask(store[0])) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    order = [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    at = [kinds.index(k) for k in order]
    assert at == sorted(at)
    # Cut by max_output_tokens or not, the last event carries the whole response (the
    # SDK's get_final_response wants `completed` only).
    assert kinds[-1] in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output[0].type == "file_search_call" and final.output[0].results
    assert final.output[-1].type == "message"


def test_without_include_the_results_stay_on_the_server(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    response = client.responses.create(**ask(store[0], include=[]))
    assert response.output[0].type == "file_search_call"
    assert response.output[0].results is None


def test_a_store_that_is_not_the_callers_is_404_and_bad_tools_400(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(**ask("vs_not_here"))
    bad = ask(store[0])
    bad["tools"] = [{"type": "file_search"}]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(**bad)
    assert err.value.body["param"] == "tools[0].vector_store_ids"  # type: ignore[index]


class Code(BaseModel):
    """The agent's answer: structured, so that it ends (see below)."""

    code: str = Field(max_length=16)


async def test_an_agents_sdk_file_search_tool_reaches_an_answer(
    live_server: LiveServer, store: tuple[str, dict[str, str]]
) -> None:
    """The Agents SDK's hosted `FileSearchTool` on its Responses model: one turn holds
    corral's search (a `ToolCallItem` of a `file_search_call`) and the answer after it,
    which the run ends with. The search is forced, as `ask` has it. The answer has an
    `output_type`: in free text the 135M model explained VPNs until the output limit
    (11 of 12 tries, 256 or 512 tokens, greedy or not), and the SDK raises on a response
    cut `incomplete`; a short JSON object ends (5 of 5 tries, 142-191 of its tokens, most
    of them the call's queries)."""
    set_tracing_disabled(True)  # no traces leave for OpenAI's servers
    client = openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)
    tool = FileSearchTool(
        vector_store_ids=[store[0]], max_num_results=2, include_search_results=True
    )
    agent = Agent(
        name="handbook",
        instructions="Answer from the handbook, briefly.",
        tools=[tool],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        model_settings=ModelSettings(tool_choice="file_search", temperature=0, max_tokens=320),
        output_type=Code,
    )
    result = await Runner.run(agent, "What code do I sign in to the VPN with?", max_turns=2)
    assert isinstance(result.final_output, Code) and result.final_output.code
    calls = [i.raw_item for i in result.new_items if isinstance(i, ToolCallItem)]
    assert [type(c) for c in calls] == [ResponseFileSearchToolCall]
    search = calls[0]
    assert isinstance(search, ResponseFileSearchToolCall)
    assert search.status == "completed" and search.queries
    assert {r.file_id for r in search.results or []} == set(store[1].values())
    assert isinstance(result.new_items[-1], MessageOutputItem)
