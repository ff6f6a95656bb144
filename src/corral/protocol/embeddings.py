"""Embeddings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from corral.protocol.common import ACCEPTED_NO_OP_FIELDS, OpenAIModel

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenAIModel):
    no_op_fields = ACCEPTED_NO_OP_FIELDS
    model: str = Field(min_length=1, max_length=256)
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
