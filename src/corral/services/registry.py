"""The models being served, each with the engine that serves it."""

from __future__ import annotations

from dataclasses import dataclass

from corral.core.errors import ModelNotFoundError
from corral.engines.base import Engine
from corral.services.catalog import ModelSpec


@dataclass(frozen=True)
class ServedModel:
    spec: ModelSpec
    engine: Engine


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}

    def add(self, spec: ModelSpec, engine: Engine) -> None:
        self._models[spec.id] = ServedModel(spec, engine)

    def get(self, model_id: str) -> ServedModel:
        served = self._models.get(model_id)
        if served is None:
            raise ModelNotFoundError(
                f"The model `{model_id}` does not exist or you do not have access to it.",
                param="model",
            )
        return served

    def all(self) -> list[ServedModel]:
        return list(self._models.values())

    async def start(self) -> None:
        for served in self._models.values():
            await served.engine.start()

    async def close(self) -> None:
        for served in self._models.values():
            await served.engine.close()
