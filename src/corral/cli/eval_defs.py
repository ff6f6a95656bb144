"""The repository's evals (``evals/NAME/``: eval.yaml + data.jsonl) as ``corral eval``
reads them: loaded and checked before any request, model variants, request bodies."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EVAL_FILE = "eval.yaml"
# A plain directory name: no separators, no leading dot, so NAME can never leave --dir.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ITEM_REFERENCE = re.compile(r"\{\{\s*item\.([A-Za-z_][A-Za-z0-9_-]*)")
# What `--model NAME@key=value` may override, and how each value is read.
VARIANT_KEYS: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "seed": int,
    "max_completion_tokens": int,
    "reasoning_effort": str,
}
TERMINAL = frozenset({"completed", "failed", "canceled"})


class EvalError(Exception):
    """A problem the user can fix: a bad definition, argument or path. Exit code 2."""


class ServerError(Exception):
    """The server said no, or could not be reached. Exit code 1."""


# --- definitions ---------------------------------------------------------------------------


class EvalDefinition(BaseModel):
    """``eval.yaml``: the API's eval and run bodies, minus the model, plus the data file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]] = Field(min_length=1)
    input_messages: dict[str, Any]
    sampling_params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = "data.jsonl"


@dataclass(frozen=True)
class LoadedEval:
    definition: EvalDefinition
    items: list[dict[str, Any]]
    directory: Path

    @property
    def name(self) -> str:
        return self.definition.name


def eval_directory(root: Path, name: str) -> Path:
    """The directory of eval NAME under ``root``, refusing anything but a plain name."""
    if not NAME.fullmatch(name):
        raise EvalError(
            f"{name!r} is not an eval name: it must be a directory name under {root} "
            "(letters, digits, '.', '_', '-')"
        )
    directory = root / name
    if not (directory / EVAL_FILE).is_file():
        known = ", ".join(sorted(p.parent.name for p in root.glob(f"*/{EVAL_FILE}")))
        raise EvalError(f"no eval {name!r} in {root}" + (f" (there are: {known})" if known else ""))
    if not directory.resolve().is_relative_to(root.resolve()):
        raise EvalError(f"{directory} leads outside {root}")
    return directory


def load_eval(directory: Path) -> LoadedEval:
    """Read and check one eval directory; every problem is an EvalError naming the file."""
    path = directory / EVAL_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise EvalError(f"{path}: expected a mapping of eval fields")
    try:
        definition = EvalDefinition.model_validate(raw)
    except ValidationError as exc:
        raise EvalError(f"{path}: {_first_error(exc)}") from None
    if definition.name != directory.name:
        raise EvalError(f"{path}: name {definition.name!r} must be the directory's name")
    _check_graders(path, definition.testing_criteria)
    items = _read_items(directory, definition.data)
    _check_items(path, definition, items)
    return LoadedEval(definition, items, directory)


def discover(root: Path) -> list[tuple[str, LoadedEval | EvalError]]:
    """Every eval directory under ``root``, loaded, or the reason it cannot be."""
    if not root.is_dir():
        raise EvalError(f"no evals directory at {root} (see --dir or CORRAL_EVALS_DIR)")
    found: list[tuple[str, LoadedEval | EvalError]] = []
    for path in sorted(root.glob(f"*/{EVAL_FILE}")):
        try:
            found.append((path.parent.name, load_eval(path.parent)))
        except EvalError as exc:
            found.append((path.parent.name, exc))
    return found


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _check_graders(path: Path, graders: list[dict[str, Any]]) -> None:
    # Results come back per grader name, so two graders with one name would merge.
    names: set[str] = set()
    for index, grader in enumerate(graders):
        name = grader.get("name")
        if not isinstance(grader.get("type"), str) or not isinstance(name, str) or not name:
            raise EvalError(f"{path}: testing_criteria[{index}] needs a type and a name")
        if name in names:
            raise EvalError(f"{path}: testing_criteria[{index}]: name {name!r} is used twice")
        names.add(name)


def _read_items(directory: Path, data: str) -> list[dict[str, Any]]:
    path = directory / data
    if Path(data).is_absolute() or not path.resolve().is_relative_to(directory.resolve()):
        raise EvalError(f"{directory / EVAL_FILE}: data {data!r} must be a file in {directory}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: {exc.strerror or exc}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("item"), dict):
            raise EvalError(f'{path}:{number}: expected {{"item": {{...}}}}')
        items.append(row["item"])
    if not items:
        raise EvalError(f"{path}: no items")
    return items


def _check_items(path: Path, definition: EvalDefinition, items: list[dict[str, Any]]) -> None:
    """What can be checked without the server: required fields, and templates that name
    fields the items have (the server checks the rest, with ``param``)."""
    schema = definition.data_source_config.get("item_schema") or {}
    required = schema.get("required") or []
    for number, item in enumerate(items, 1):
        missing = [key for key in required if key not in item]
        if missing:
            raise EvalError(f"{path.parent / definition.data}:{number}: missing {missing}")
    properties = schema.get("properties")
    if isinstance(properties, dict):
        templates = json.dumps([definition.testing_criteria, definition.input_messages])
        for field_name in ITEM_REFERENCE.findall(templates):
            if field_name not in properties:
                raise EvalError(f"{path}: {{{{item.{field_name}}}}} is not in the item_schema")


# --- models and variants -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVariant:
    """``--model NAME`` or ``--model NAME@temperature=1.2,seed=3``."""

    label: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_variant(spec: str) -> ModelVariant:
    model, at, settings = spec.partition("@")
    if not model.strip() or (at and not settings.strip()):
        raise EvalError(f"--model {spec!r}: expected NAME or NAME@key=value,key=value")
    overrides: dict[str, Any] = {}
    for pair in settings.split(",") if settings else []:
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or key not in VARIANT_KEYS or not value:
            keys = ", ".join(VARIANT_KEYS)
            raise EvalError(f"--model {spec!r}: {pair!r} is not key=value with a key in {keys}")
        try:
            overrides[key] = VARIANT_KEYS[key](value)
        except ValueError:
            kind = VARIANT_KEYS[key].__name__
            raise EvalError(f"--model {spec!r}: {key} must be a {kind}") from None
    return ModelVariant(spec, model.strip(), overrides)


def parse_variants(specs: list[str]) -> list[ModelVariant]:
    variants = [parse_variant(spec) for spec in specs]
    labels = [v.label for v in variants]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise EvalError(f"--model given twice: {', '.join(twice)}")
    return variants


# --- request bodies ------------------------------------------------------------------------


def eval_body(ev: LoadedEval) -> dict[str, Any]:
    d = ev.definition
    return {
        "name": d.name,
        "data_source_config": d.data_source_config,
        "testing_criteria": d.testing_criteria,
        "metadata": {**d.metadata, "corral_eval": d.name},
    }


def run_body(ev: LoadedEval, variant: ModelVariant, items: list[dict[str, Any]]) -> dict[str, Any]:
    d = ev.definition
    return {
        "name": f"{d.name} {variant.label}",
        "metadata": {"variant": variant.label},
        "data_source": {
            "type": "completions",
            "model": variant.model,
            "input_messages": d.input_messages,
            "sampling_params": {**d.sampling_params, **variant.overrides},
            "source": {"type": "file_content", "content": [{"item": i} for i in items]},
        },
    }
