"""Responses input items: listed in OpenAI's shape (a message's content as parts), read by
the model as the same text."""

from __future__ import annotations

from typing import Any

import pytest

from corral.inference.responses.input import as_items, to_messages, with_parts


def test_a_string_input_is_a_user_message_of_input_text() -> None:
    (item,) = as_items("hi")
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
        "status": "completed",
    }


@pytest.mark.parametrize(
    ("role", "part"),
    [
        ("user", {"type": "input_text", "text": "x"}),
        ("system", {"type": "input_text", "text": "x"}),
        ("developer", {"type": "input_text", "text": "x"}),
        ("assistant", {"type": "output_text", "text": "x", "annotations": []}),
    ],
)
def test_a_string_content_becomes_the_roles_part(role: str, part: dict[str, Any]) -> None:
    (item,) = as_items([{"role": role, "content": "x"}])
    assert item["type"] == "message" and item["content"] == [part]
    (item,) = as_items([{"role": role, "content": [{"type": "text", "text": "x"}]}])
    assert item["content"] == [part]  # a generic text part too


def test_parts_and_other_items_are_kept_as_they_are() -> None:
    parts = [{"type": "input_text", "text": "a"}, {"type": "input_image", "image_url": "u"}]
    message = {"type": "message", "role": "user", "content": parts, "status": "in_progress"}
    assert with_parts(message) == message
    output = {"type": "function_call_output", "call_id": "c", "output": "42"}
    assert with_parts(output) == output
    odd = {"type": "message", "role": "user", "content": 3}
    assert with_parts(odd) == odd  # refused later, by to_messages, with its param


def test_what_the_model_reads_is_unchanged() -> None:
    raw = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "input_text", "text": "b"}],
        },
    ]
    assert to_messages(as_items(raw), "rules") == [
        {"role": "system", "content": "rules"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "ab"},
    ]


def test_listing_is_idempotent() -> None:
    items = as_items([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert [with_parts(i) for i in items] == items


def test_file_search_is_offered_as_a_function_and_bounded() -> None:
    from corral.core.errors import InvalidRequestError
    from corral.inference.responses.input import to_tool_choice
    from corral.inference.responses.tools import FILE_SEARCH, toolset

    tool = {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 3}
    served = toolset([tool], refuse_hosted=False, file_search=True)
    assert served.file_search is not None and served.file_search.max_num_results == 3
    assert [t["function"]["name"] for t in served.chat] == [FILE_SEARCH]
    assert served.honoured == [tool] and not served.left_out
    # Without vector stores served here it is left out, like the other hosted tools.
    assert toolset([tool], refuse_hosted=False).left_out == ["file_search"]
    assert to_tool_choice({"type": "file_search"}) == {
        "type": "function",
        "function": {"name": FILE_SEARCH},
    }
    bad = [
        ({"type": "file_search"}, "tools[0].vector_store_ids"),
        ({**tool, "vector_store_ids": ["a", "b", "c"]}, "tools[0].vector_store_ids"),
        ({**tool, "max_num_results": 51}, "tools[0].max_num_results"),
        ({**tool, "filters": "x"}, "tools[0].filters"),
    ]
    for case, param in bad:
        with pytest.raises(InvalidRequestError) as err:
            toolset([case], refuse_hosted=False, file_search=True)
        assert err.value.param == param
    named = {"type": "function", "name": FILE_SEARCH, "parameters": {"type": "object"}}
    with pytest.raises(InvalidRequestError):
        toolset([tool, named], refuse_hosted=False, file_search=True)
    with pytest.raises(InvalidRequestError):
        toolset([tool, tool], refuse_hosted=False, file_search=True)
