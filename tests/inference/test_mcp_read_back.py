"""An MCP call's result reads the same to the model in its own turn and when a later
turn replays it: Responses' `mcp_call` item and Messages' `mcp_tool_result` block."""

from __future__ import annotations

from corral.inference.mcp import read_back
from corral.inference.messages.events import MessageStream
from corral.inference.messages.translate import _tool_result
from corral.inference.responses.input import to_messages
from corral.protocol.events import ServerTool
from corral.protocol.messages import Message, MessageUsage
from corral.protocol.responses import McpCallItem

ERROR = {"type": "http_error", "code": 504, "message": "The MCP server did not answer."}


def call(output: str | None, error: dict[str, object] | None) -> McpCallItem:
    return McpCallItem(
        id="mcp_1", server_label="vault", name="vault_code", arguments="{}",
        output=output, error=error, status="failed" if error else "completed",
    )  # fmt: skip


def test_a_responses_replay_reads_as_the_turn_did() -> None:
    for output, error in (("Zanzibar-42", None), (None, ERROR)):
        item = call(output, error).model_dump()
        messages = to_messages([item], None)
        assert messages[-1]["content"] == read_back(output, error)
    assert read_back(None, ERROR) == "Error: The MCP server did not answer."


def test_a_messages_replay_reads_as_the_turn_did() -> None:
    for output, error in (("Zanzibar-42", None), (None, ERROR)):
        stream = MessageStream(
            Message(id="msg_1", model="m", usage=MessageUsage(input_tokens=0, output_tokens=0)),
            lambda text: text,
            True,
        )
        stream.feed(ServerTool("called", call(output, error)))
        block = stream.message.content[-1].model_dump()
        assert _tool_result(block, "content[1]")["content"] == read_back(output, error)
