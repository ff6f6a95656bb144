"""Model objects for /v1/models and /v1/deprecations."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel


class Pricing(BaseModel):
    """USD per 1M tokens."""

    input: float
    cached_input: float
    output: float
    # The Batch API's price point.
    batch_input: float | None = None
    batch_output: float | None = None
    unit: Literal["USD per 1M tokens"] = "USD per 1M tokens"


class Stages(BaseModel):
    preview: dt.date | None = None
    active: dt.date | None = None
    deprecated: dt.date | None = None
    shutdown: dt.date | None = None


class AliasMove(BaseModel):
    since: dt.date
    snapshot: str | None = None  # none: the alias pointed nowhere (left out of answers)
    scheduled: bool = False


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # corral's additions beside OpenAI's fields
    context_window: int
    capabilities: list[str]
    description: str = ""
    name: str | None = None
    snapshot_of: str | None = None  # the family alias, on a snapshot
    aliases: list[str] = []  # aliases that point here today, on a snapshot
    alias_for: str | None = None  # the snapshot it points to today, on an alias
    alias_history: list[AliasMove] | None = None  # dated moves, on an alias
    state: Literal["preview", "active", "deprecated", "shutdown"] | None = None
    stages: Stages | None = None
    replacement: str | None = None
    pricing: Pricing | None = None
    languages: list[str] | None = None
    max_context_window: int | None = None  # what the model was trained for
    # How tools reach it: native (its template's format), prompt (corral's), auto.
    tool_format: Literal["auto", "native", "prompt"] | None = None
    loaded: bool | None = None
    # Whether a request to it can be served now: what /v1/models lists (without ?all).
    available: bool | None = None
    parent: str | None = None  # the base snapshot, on a fine-tuned model


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Deprecation(BaseModel):
    id: str
    object: Literal["model.deprecation"] = "model.deprecation"
    name: str
    state: Literal["preview", "active", "deprecated", "shutdown"] | None
    deprecated: dt.date | None
    shutdown: dt.date | None
    replacement: str | None
    replacement_snapshot: str | None


class DeprecationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Deprecation]
