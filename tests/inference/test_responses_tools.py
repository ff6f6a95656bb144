"""The tools of a Responses request, as the core is offered them."""

from __future__ import annotations

from corral.inference.responses.tools import toolset


def test_a_null_parameters_or_description_is_none_given() -> None:
    """The openai SDK types a function tool's `parameters` as required and nullable: null
    reaches the core as no schema (any arguments), not as a null it would refuse."""
    tool = {"type": "function", "name": "f", "parameters": None, "description": None}
    assert toolset([tool], refuse_hosted=False).chat == [
        {"type": "function", "function": {"name": "f"}}
    ]
