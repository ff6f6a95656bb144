from __future__ import annotations

from typing import Any

import pytest

from corral.core.errors import InvalidRequestError
from corral.evals.definitions import parse_definition

CONFIG = {
    "type": "custom",
    "item_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    "include_sample_schema": True,
}
CHECK = {
    "type": "string_check",
    "name": "c",
    "input": "{{sample.output_text}}",
    "reference": "{{item.q}}",
    "operation": "eq",
}


def served(name: str) -> bool:
    return name == "judge"


def refused(config: dict[str, Any], criteria: list[dict[str, Any]]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as err:
        parse_definition(config, criteria, served)
    return err.value


def test_a_good_definition() -> None:
    definition = parse_definition(CONFIG, [CHECK], served)
    assert [g.name for g in definition.graders] == ["c"]


@pytest.mark.parametrize(
    ("criterion", "param"),
    [
        ({**CHECK, "type": "regex_check"}, "testing_criteria[0].type"),
        ({"type": "multi", "name": "m"}, "testing_criteria[0].type"),
        ({"type": "python", "name": "p", "source": ""}, "testing_criteria[0].source"),
        ({**CHECK, "reference": "{{item.answer}}"}, "testing_criteria[0].reference"),
        ({**CHECK, "input": "{{sample.text}}"}, "testing_criteria[0].input"),
        ({**CHECK, "input": "{{ config.secret }}"}, "testing_criteria[0].input"),
        ({**CHECK, "operation": "regex"}, "testing_criteria[0].operation"),
        (
            {
                "type": "text_similarity",
                "name": "t",
                "input": "x",
                "reference": "y",
                "evaluation_metric": "meteor",
                "pass_threshold": 0.5,
            },
            "testing_criteria[0].evaluation_metric",
        ),
        (
            {
                "type": "label_model",
                "name": "l",
                "model": "judge",
                "input": [{"role": "user", "content": "{{item.q}}"}],
                "labels": ["a"],
                "passing_labels": ["b"],
            },
            "testing_criteria[0].passing_labels",
        ),
        (
            {
                "type": "score_model",
                "name": "s",
                "model": "nobody",
                "input": [{"role": "user", "content": "{{item.q}}"}],
            },
            "testing_criteria[0].model",
        ),
        (
            {
                "type": "score_model",
                "name": "s",
                "model": "judge",
                "input": [{"role": "user", "content": "{{item.nope}}"}],
            },
            "testing_criteria[0].input[0].content",
        ),
        ({**CHECK, "type": ["string_check"]}, "testing_criteria[0].type"),  # was a 500
        ({**CHECK, "name": 5}, "testing_criteria[0].name"),  # read strictly: not "5"
        (
            {
                "type": "score_model",
                "name": "s",
                "model": "judge",
                "input": [{"role": "user", "content": "x" * 20_001}],
            },
            "testing_criteria[0].input[0].content",  # no union tag in it
        ),
    ],
)
def test_bad_criteria_name_their_param(criterion: dict[str, Any], param: str) -> None:
    assert refused(CONFIG, [criterion]).param == param


def test_a_message_whose_content_is_a_text_part_is_taken() -> None:
    """``{"type": "input_text", "text": …}`` as a message's content, as OpenAI's evals
    take it (read strictly, the string member's length bound once refused it: a 500)."""
    part = {"type": "input_text", "text": "{{item.q}}"}
    judge = {
        "type": "score_model",
        "name": "s",
        "model": "judge",
        "input": [{"role": "user", "content": part}],
    }
    definition = parse_definition(CONFIG, [judge], served)
    assert definition.graders[0].input[0].text() == "{{item.q}}"  # type: ignore[union-attr]


def test_bad_configs() -> None:
    assert refused({"type": "logs"}, [CHECK]).param == "data_source_config.type"
    bad_schema = {**CONFIG, "item_schema": {"type": "no-such-type"}}
    assert refused(bad_schema, [CHECK]).param == "data_source_config.item_schema"
    no_sample = {**CONFIG, "include_sample_schema": False}
    assert refused(no_sample, [CHECK]).param == "testing_criteria[0].input"
    assert refused(CONFIG, [CHECK, CHECK]).param == "testing_criteria"


def test_python_graders_only_where_the_sandbox_works() -> None:
    grader = {"type": "python", "name": "p", "source": "def grade(s, i): return 1"}
    assert parse_definition(CONFIG, [grader], served).graders[0].type == "python"
    with pytest.raises(InvalidRequestError) as err:
        parse_definition(CONFIG, [grader], served, python_unavailable="no bwrap")
    assert err.value.param == "testing_criteria[0].type" and "no bwrap" in str(err.value)
