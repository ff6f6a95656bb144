"""Legacy text completions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from corral.protocol.common import (
    ACCEPTED_NO_OP_FIELDS,
    FinishReason,
    OpenAIModel,
    StopField,
    StreamOptions,
    Usage,
)

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(OpenAIModel):
    no_op_fields = ACCEPTED_NO_OP_FIELDS
    model: str = Field(min_length=1, max_length=256)
    prompt: Prompt
    max_tokens: int | None = Field(16, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    best_of: int | None = Field(None, ge=1)
    stop: StopField = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    user: str | None = Field(None, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: dict[str, Any] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: Usage
