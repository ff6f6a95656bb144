from __future__ import annotations

import pytest

from corral.evals.templates import TemplateError, parse_path, references, render

CONTEXT = {
    "item": {"city": "Paris", "n": 3, "tags": ["a", "b"]},
    "sample": {
        "output_text": "hi",
        "output_json": {"city": "Lyon"},
        "output_tools": [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
    },
}


def test_paths_with_indexes_and_spaces() -> None:
    assert references("{{ item.city }} and {{sample.output_tools[0].function.name}}") == [
        ["item", "city"],
        ["sample", "output_tools", 0, "function", "name"],
    ]


def test_render_strings_as_is_and_the_rest_as_json() -> None:
    text = "{{item.city}}|{{item.n}}|{{item.tags}}|{{sample.output_json.city}}"
    assert render(text, CONTEXT) == 'Paris|3|["a", "b"]|Lyon'
    assert render("{{sample.output_tools[0].function.arguments}}", CONTEXT) == '{"city": "Oslo"}'


@pytest.mark.parametrize(
    "template",
    [
        "{{item.missing}}",
        "{{item.tags[5]}}",
        "{{sample.output_json.city.deeper}}",
    ],
)
def test_missing_values_are_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    "raw",
    [
        "item.__class__.__mro__",  # fine as a path, but it only ever looks up dict keys
        "os.system('id')",
        "config.items",
        "item[0]",
        "",
    ],
)
def test_nothing_is_evaluated(raw: str) -> None:
    try:
        steps = parse_path(raw)
    except TemplateError:
        return
    with pytest.raises(TemplateError):  # a dict has no key "__class__"
        render("{{" + raw + "}}", CONTEXT)
    assert steps[0] == "item"
