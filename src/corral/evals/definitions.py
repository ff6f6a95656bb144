"""Checking an eval definition before it is stored: every grader known and well formed,
every template reference present in the item schema (or the sample), judges served.

Errors are 400s whose ``param`` points into the request: ``testing_criteria[1].input``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from corral.core.errors import InvalidRequestError
from corral.core.field_errors import optional_string, strictly
from corral.evals.similarity import SUPPORTED
from corral.evals.templates import SAMPLE_FIELDS, TemplateError, references
from corral.protocol.evals import (
    GRADER_TYPES,
    CustomDataSourceConfig,
    Grader,
    LabelModelGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)

ModelExists = Callable[[str], bool]
UNSUPPORTED_GRADERS = {
    "multi": "`multi` graders are not supported yet; list the graders separately.",
}


@dataclass(frozen=True)
class EvalDefinition:
    config: CustomDataSourceConfig
    graders: list[Grader]


def parse_config(raw: dict[str, Any]) -> CustomDataSourceConfig:
    kind = raw.get("type")
    if kind != "custom":
        raise InvalidRequestError(
            f"data_source_config type {kind!r} is not supported: use `custom` with an "
            "item_schema (corral stores no completions logs to draw from).",
            param="data_source_config.type",
        )
    config: CustomDataSourceConfig = strictly(CustomDataSourceConfig, raw, ("data_source_config",))
    try:
        jsonschema.Draft202012Validator.check_schema(config.item_schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(
            f"item_schema is not a valid JSON Schema: {exc.message}",
            param="data_source_config.item_schema",
        ) from None
    return config


def check_template(
    text: str, config: CustomDataSourceConfig, param: str, sample_allowed: bool = True
) -> None:
    """Every reference must name an item field the schema declares, or a sample field."""
    try:
        paths = references(text)
    except TemplateError as exc:
        raise InvalidRequestError(str(exc), param=param) from None
    fields = config.item_schema.get("properties")
    for steps in paths:
        shown = ".".join(str(s) for s in steps[:2])
        if steps[0] == "item":
            if len(steps) < 2 or (isinstance(fields, dict) and steps[1] not in fields):
                raise InvalidRequestError(
                    f"`{{{{{shown}}}}}` is not a field of the eval's item_schema.", param=param
                )
        elif not (sample_allowed and config.include_sample_schema):
            raise InvalidRequestError(
                f"`{{{{{shown}}}}}` uses the sample, which this template cannot see "
                "(set include_sample_schema on the eval to grade model output).",
                param=param,
            )
        elif len(steps) < 2 or steps[1] not in SAMPLE_FIELDS:
            raise InvalidRequestError(
                f"`{{{{{shown}}}}}` is not a sample field ({', '.join(sorted(SAMPLE_FIELDS))}).",
                param=param,
            )


def _templates(grader: Grader) -> list[tuple[str, str]]:
    """(field path, text) of every template a grader holds."""
    if isinstance(grader, PythonGrader):
        return []  # code, not a template: it gets the item and the sample as data
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return [("input", grader.input), ("reference", grader.reference)]
    return [(f"input[{i}].content", m.text()) for i, m in enumerate(grader.input)]


def _check_grader(grader: Grader, prefix: str, model_exists: ModelExists) -> None:
    if isinstance(grader, TextSimilarityGrader) and grader.evaluation_metric not in (
        SUPPORTED | {"cosine"}
    ):
        raise InvalidRequestError(
            f"evaluation_metric `{grader.evaluation_metric}` is not supported; use one of "
            f"{', '.join(sorted(SUPPORTED | {'cosine'}))}.",
            param=f"{prefix}.evaluation_metric",
        )
    if isinstance(grader, LabelModelGrader) and not set(grader.passing_labels) <= set(
        grader.labels
    ):
        raise InvalidRequestError(
            "Every passing label must be one of the labels.", param=f"{prefix}.passing_labels"
        )
    if isinstance(grader, ScoreModelGrader):
        low, high = grader.range or (0.0, 1.0)
        if not low < high:
            raise InvalidRequestError(
                "range must be [low, high], low < high.", param=f"{prefix}.range"
            )
        if grader.pass_threshold is not None and not low <= grader.pass_threshold <= high:
            raise InvalidRequestError(
                "pass_threshold must lie in the range.", param=f"{prefix}.pass_threshold"
            )
    if isinstance(grader, LabelModelGrader | ScoreModelGrader) and not model_exists(grader.model):
        raise InvalidRequestError(
            f"The judge model `{grader.model}` is not served here.", param=f"{prefix}.model"
        )


def parse_grader(
    index: int,
    raw: dict[str, Any],
    config: CustomDataSourceConfig,
    model_exists: ModelExists,
    python_unavailable: str | None = None,
) -> Grader:
    prefix = f"testing_criteria[{index}]"
    kind = optional_string(raw.get("type"), f"{prefix}.type")
    if kind in UNSUPPORTED_GRADERS:
        raise InvalidRequestError(UNSUPPORTED_GRADERS[str(kind)], param=f"{prefix}.type")
    if kind == "python" and python_unavailable is not None:
        raise InvalidRequestError(
            f"`python` graders cannot run on this server: {python_unavailable}. Untrusted "
            "grader code only ever runs sandboxed.",
            param=f"{prefix}.type",
        )
    if kind not in GRADER_TYPES:
        raise InvalidRequestError(
            f"Unknown grader type {kind!r}; use one of {', '.join(GRADER_TYPES)}.",
            param=f"{prefix}.type",
        )
    grader: Grader = strictly(GRADER_TYPES[str(kind)], raw, (prefix,))
    _check_grader(grader, prefix, model_exists)
    for field, text in _templates(grader):
        check_template(text, config, f"{prefix}.{field}")
    return grader


def parse_definition(
    data_source_config: dict[str, Any],
    testing_criteria: list[dict[str, Any]],
    model_exists: ModelExists,
    python_unavailable: str | None = None,
) -> EvalDefinition:
    config = parse_config(data_source_config)
    graders = [
        parse_grader(i, raw, config, model_exists, python_unavailable)
        for i, raw in enumerate(testing_criteria)
    ]
    names = [g.name for g in graders]
    if len(set(names)) != len(names):
        raise InvalidRequestError(
            "Each testing criterion needs its own name.", param="testing_criteria"
        )
    return EvalDefinition(config, graders)
