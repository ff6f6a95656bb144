"""Remote MCP tools on Responses, with the official `openai` SDK against a live server on
the embedded model, and the `mcp` SDK's own server (``MCPServer``) on loopback: the tools
listed (an ``mcp_list_tools`` item, reused by the next turn), a call made and its output
used, the approval flow over ``previous_response_id``, the streamed events, a URL outside
the allow-list refused before any connection, a server that hangs or answers 50 MB cut
off, and the OpenAI Agents SDK's ``HostedMCPTool`` run to an answer.

The shared live server allows ``http://127.0.0.1:<MCP_PORT>/mcp`` with a 4 s deadline
(tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from agents import (
    Agent,
    HostedMCPTool,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    set_tracing_disabled,
)
from agents.model_settings import MCPToolChoice
from pydantic import BaseModel, Field

from tests.conftest import MCP_PORT, MODEL, LiveServer
from tests.mcp_server import SECRET, McpTestServer

pytestmark = pytest.mark.slow

QUESTION = "What is the access code of the vault named north?"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer(MCP_PORT).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live_server: LiveServer, mcp_server: McpTestServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0)


def vault(mcp_server: McpTestServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "vault",
        "server_url": mcp_server.url,
        "allowed_tools": ["vault_code"],
        "headers": {"X-Api-Key": "s3cret-header"},
        **extra,
    }


def ask(tool: dict[str, Any], name: str = "vault_code", **extra: Any) -> dict[str, Any]:
    """Greedy, the call forced (left to choose, a 135M model often answers from nothing),
    and room for the call (the model spaces its JSON out) and an answer after it."""
    return {
        "model": MODEL,
        "input": QUESTION,
        "tools": [tool],
        "tool_choice": {"type": "mcp", "server_label": tool["server_label"], "name": name},
        "max_output_tokens": 200,
        "temperature": 0,
        **extra,
    }


def items(response: Any, kind: str) -> list[Any]:
    return [o for o in response.output if o.type == kind]


def test_a_call_is_made_and_its_output_used(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    r = client.responses.create(**ask(vault(mcp_server, require_approval="never")))
    (listing,) = items(r, "mcp_list_tools")
    assert listing.server_label == "vault"
    assert {"vault_code", "add"} <= {t.name for t in listing.tools}
    (call,) = items(r, "mcp_call")
    assert call.name == "vault_code" and call.error is None
    assert SECRET in (call.output or "")
    assert [o.type for o in r.output][-1] == "message"
    assert SECRET.split("-")[0] in r.output_text  # the answer read the call's output
    assert r.usage is not None and r.usage.input_tokens > 0
    # Echoed without the request's secrets.
    assert r.tools[0].headers is None
    assert r.tools[0].server_url == mcp_server.url


def test_a_next_turn_reuses_the_listing(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    tool = vault(mcp_server, require_approval="never")
    first = client.responses.create(**ask(tool))
    body = ask(tool, previous_response_id=first.id, input="And the vault named south?")
    second = client.responses.create(**body)
    assert not items(second, "mcp_list_tools")  # the context holds one
    (call,) = items(second, "mcp_call")
    assert SECRET in (call.output or "")


def test_the_approval_flow(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    """By default a call waits for approval: the response ends with the request; the
    next one answers it, and the call runs then."""
    asked = client.responses.create(**ask(vault(mcp_server)))
    assert not items(asked, "mcp_call")
    (request,) = items(asked, "mcp_approval_request")
    assert request.name == "vault_code" and asked.status == "completed"
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    done = client.responses.create(
        **ask(vault(mcp_server), previous_response_id=asked.id, input=[approval])
    )
    (call,) = items(done, "mcp_call")
    assert call.approval_request_id == request.id
    assert SECRET in (call.output or "")
    assert items(done, "message")


def test_an_unknown_approval_is_refused(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    approval = {"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(**ask(vault(mcp_server), input=[approval]))
    assert refused.value.body["param"] == "input[0].approval_request_id"  # type: ignore[index]


def test_streamed_events(client: openai.OpenAI, mcp_server: McpTestServer) -> None:
    kinds = []
    with client.responses.stream(**ask(vault(mcp_server, require_approval="never"))) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    expected = [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
    ]
    seen = [k for k in kinds if k in expected]
    assert seen == expected
    assert kinds[-1] == "response.completed"
    assert SECRET in (items(final, "mcp_call")[0].output or "")


def test_a_url_outside_the_allow_list_is_refused(
    client: openai.OpenAI, mcp_server: McpTestServer
) -> None:
    for url in (f"http://127.0.0.1:{MCP_PORT}/other", "http://169.254.169.254/latest"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(**ask(vault(mcp_server, server_url=url)))
        assert refused.value.body["param"] == "tools[0].server_url"  # type: ignore[index]
        assert "CORRAL_MCP__ALLOWED_URLS" in refused.value.message


def test_a_server_that_cannot_list_fails_the_request(
    live_server: LiveServer, mcp_server: McpTestServer
) -> None:
    """Allowed, but not an MCP server: OpenAI's 424, in its error shape."""
    body = ask(vault(mcp_server, server_url=mcp_server.url + "/nothing-here"))
    r = httpx.post(live_server.url + "/v1/responses", json=body, timeout=60)
    assert r.status_code == 424, r.text
    assert r.json()["error"]["type"] == "external_connector_error"


@pytest.mark.parametrize("tool", ["hang", "huge"])
def test_a_server_that_hangs_or_answers_50_mb_is_cut_off(
    client: openai.OpenAI, mcp_server: McpTestServer, tool: str
) -> None:
    spec = vault(mcp_server, require_approval="never", allowed_tools=[tool])
    r = client.responses.create(**ask(spec, name=tool, max_output_tokens=60))
    (call,) = items(r, "mcp_call")
    assert call.status == "failed" and call.output is None
    assert call.error is not None


class Access(BaseModel):
    """The agent's answer, structured: its `output_type` is the response's `text.format`,
    which the answer after the call keeps (the tools' grammar carries it)."""

    code: str = Field(max_length=32)


def test_the_agents_sdk_hosted_mcp_tool(live_server: LiveServer, mcp_server: McpTestServer) -> None:
    set_tracing_disabled(True)
    aclient = openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="x", max_retries=0)
    config: Any = vault(mcp_server, require_approval="never")
    agent = Agent(
        name="vault keeper",
        instructions="Use the vault tools to answer.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=aclient),
        model_settings=ModelSettings(
            temperature=0,
            max_tokens=300,
            tool_choice=MCPToolChoice(server_label="vault", name="vault_code"),
        ),
        tools=[HostedMCPTool(tool_config=config)],
        output_type=Access,
    )
    result = Runner.run_sync(agent, QUESTION, max_turns=3)
    assert isinstance(result.final_output, Access) and result.final_output.code
    raw = [getattr(i, "raw_item", None) for i in result.new_items]
    calls = [r for r in raw if getattr(r, "type", None) == "mcp_call"]
    assert calls and SECRET in (calls[0].output or "")


# --- Messages: Anthropic's MCP connector (`mcp_servers`), with the `anthropic` SDK ---


@pytest.fixture(scope="module")
def claude(live_server: LiveServer, mcp_server: McpTestServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live_server.url, api_key="unused", max_retries=0)


def connector(mcp_server: McpTestServer, **extra: Any) -> dict[str, Any]:
    servers = [
        {
            "type": "url",
            "url": mcp_server.url,
            "name": "vault",
            "authorization_token": "t0ken",
            "tool_configuration": {"allowed_tools": ["vault_code"]},
        }
    ]
    return {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": QUESTION}],
        "mcp_servers": servers,
        "betas": ["mcp-client-2025-04-04"],
        # The installed SDK's create takes no `temperature`; the call forced, as above.
        "extra_body": {"temperature": 0},
        "tool_choice": {"type": "tool", "name": "vault__vault_code"},
        **extra,
    }


def test_messages_mcp_connector(claude: anthropic.Anthropic, mcp_server: McpTestServer) -> None:
    message = claude.beta.messages.create(**connector(mcp_server))
    kinds = [b.type for b in message.content]
    assert kinds[:2] == ["mcp_tool_use", "mcp_tool_result"], kinds
    use, result = message.content[0], message.content[1]
    assert use.name == "vault_code" and use.server_name == "vault"  # type: ignore[union-attr]
    assert result.tool_use_id == use.id and not result.is_error  # type: ignore[union-attr]
    assert SECRET in result.content[0].text  # type: ignore[union-attr,index]
    # An answer follows the result (greedy is not repeatable across the shared server's
    # batches: it has run to the limit once).
    assert kinds[-1] == "text" and message.stop_reason in ("end_turn", "max_tokens")
    # The turn sent back as it came: its call and result are the next turn's history.
    history = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in message.content],
        },
        {"role": "user", "content": "Thanks."},
    ]
    again = claude.beta.messages.create(
        **connector(mcp_server, messages=history, max_tokens=16, tool_choice={"type": "none"})
    )
    assert again.content


def test_messages_mcp_connector_streamed(
    claude: anthropic.Anthropic, mcp_server: McpTestServer
) -> None:
    with claude.beta.messages.stream(**connector(mcp_server)) as stream:
        started = [e.content_block.type for e in stream if e.type == "content_block_start"]
        final = stream.get_final_message()
    assert started[:2] == ["mcp_tool_use", "mcp_tool_result"]
    assert [b.type for b in final.content] == started
    assert final.content[0].input.get("vault")  # type: ignore[union-attr]


def test_messages_mcp_url_outside_the_allow_list(claude: anthropic.Anthropic) -> None:
    servers = [{"type": "url", "url": "http://127.0.0.1:1/mcp", "name": "x"}]
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.beta.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            mcp_servers=servers,  # type: ignore[arg-type]
            betas=["mcp-client-2025-04-04"],
        )
    assert "CORRAL_MCP__ALLOWED_URLS" in refused.value.message
