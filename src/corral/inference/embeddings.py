"""Embeddings from the loaded model in embedding mode."""

from __future__ import annotations

import base64
from array import array
from dataclasses import dataclass

from corral.accounts.metering import Charge
from corral.catalog.registry import ModelRegistry, ServedModel
from corral.core.config import LimitSettings
from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.inference.admission import Admission
from corral.inference.prepared import Prepared
from corral.inference.requests import check_count, refuse_unknown_fields
from corral.protocol.embeddings import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage

Input = str | list[int]


def _inputs(req: EmbeddingRequest) -> list[Input]:
    value = req.input
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(x, int) for x in value):
        return [value]  # type: ignore[list-item]
    return list(value)  # type: ignore[arg-type]


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 format: little-endian float32, which the SDK decodes."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover - every platform we run on has 4-byte floats
        raise RuntimeError("float32 expected")
    return base64.b64encode(packed.tobytes()).decode()


@dataclass(frozen=True, kw_only=True)
class PreparedEmbedding(Prepared):
    inputs: list[Input]
    as_base64: bool


class EmbeddingService:
    def __init__(self, registry: ModelRegistry, limits: LimitSettings, admission: Admission):
        self._registry = registry
        self._limits = limits
        self._admission = admission

    async def prepare(self, req: EmbeddingRequest) -> PreparedEmbedding:
        """Everything that can be refused is refused here, before metering."""
        refuse_unknown_fields(req)
        inputs = _inputs(req)
        if not inputs:
            raise InvalidRequestError("`input` must not be empty.", param="input")
        check_count("input", len(inputs), self._limits.max_embedding_inputs)
        if any(i == "" or i == [] for i in inputs):
            raise InvalidRequestError("`input` items must not be empty.", param="input")
        if req.dimensions is not None:
            raise UnsupportedParameterError(
                "`dimensions` is not supported: this model has a fixed embedding size.",
                param="dimensions",
            )
        served = self._registry.get(req.model)
        if not served.engine.info.embeddings:
            raise InvalidRequestError(
                f"The model `{served.spec.id}` does not serve embeddings.", param="model"
            )
        bound = await self._check_lengths(served, inputs)
        return PreparedEmbedding(
            served=served,
            charge=Charge(served.spec, "embeddings", bound, 0),
            inputs=inputs,
            as_base64=req.encoding_format == "base64",
        )

    async def run(self, p: PreparedEmbedding) -> EmbeddingList:
        with self._admission.slot(p.served):
            result = await p.served.engine.embed({"input": p.inputs})
        data = []
        for item in sorted(result["data"], key=lambda d: d["index"]):
            vector = [float(x) for x in item["embedding"]]
            value: list[float] | str = encode_base64(vector) if p.as_base64 else vector
            data.append(Embedding(index=item["index"], embedding=value))
        prompt_tokens = int(result.get("usage", {}).get("prompt_tokens", 0))
        return EmbeddingList(
            data=data,
            model=p.served.spec.id,
            usage=EmbeddingUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
        )

    async def _check_lengths(self, served: ServedModel, inputs: list[Input]) -> int:
        """Refuse an input over the limit; returns a bound on all inputs' tokens."""
        # llama.cpp embeds each input in one physical batch, so that is the length bound.
        limit = served.engine.info.max_embedding_tokens
        total = 0
        for index, item in enumerate(inputs):
            bound = len(item) if isinstance(item, list) else len(item.encode()) + 2
            total += bound
            if bound <= limit:
                continue
            count = bound if isinstance(item, list) else await served.engine.count_tokens(item)
            if count > limit:
                raise InvalidRequestError(
                    f"Input {index} has {count} tokens; this model embeds at most {limit}.",
                    param="input",
                    code="context_length_exceeded",
                )
        return total
