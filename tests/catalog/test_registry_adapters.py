"""Fine-tuned models in the registry: served over the base's engine, which reloads with
the new adapter set while calls in flight finish on the old one."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from corral.catalog.adapters import FineTunedModel
from corral.catalog.registry import ModelRegistry
from corral.catalog.schema import ModelSpec, load_catalog
from corral.core.errors import ModelNotFoundError
from corral.engines.base import ADAPTER_KEY, Body
from tests.fakes import FakeEngine
from tests.lifecycle_catalog import test_catalog as make_catalog

TODAY = date(2026, 6, 1)
BASE = "tiny-a-new"


class Recording(FakeEngine):
    def __init__(self, adapters: tuple[Path, ...]) -> None:
        super().__init__()
        self.adapters = adapters
        self.closed = False
        self.gate: asyncio.Event | None = None

    async def chat(self, body: Body) -> Body:
        if self.gate is not None:
            await self.gate.wait()
        return await super().chat(body)

    async def close(self) -> None:
        self.closed = True


async def test_fine_tunes_share_and_reload_the_base(tmp_path: Path) -> None:
    catalog = load_catalog(make_catalog(tmp_path, TODAY), shipped=False, today=lambda: TODAY)
    made: list[Recording] = []
    registry: ModelRegistry

    def factory(spec: ModelSpec) -> Recording:
        made.append(Recording(registry.adapters_for(spec.id)))
        return made[-1]

    registry = ModelRegistry(catalog, factory, load_timeout_s=5)
    base = registry.get(BASE).engine
    await base.start()
    assert made[0].adapters == ()

    made[0].gate = asyncio.Event()
    in_flight = asyncio.ensure_future(
        base.chat({"messages": [{"role": "user", "content": "slow one"}]})
    )
    await asyncio.sleep(0.05)

    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    ft = FineTunedModel(f"ft:{BASE}:org-a:s:ftjob-1", BASE, adapter, "org-a", 1)
    await registry.set_fine_tuned([ft])
    assert len(made) == 2 and made[1].adapters == (adapter,)
    assert not made[0].closed  # its call is still in flight

    served = registry.get(ft.id)
    assert served.spec.id == ft.id and served.spec.owned_by == "org-a"
    await served.engine.chat({"messages": [{"role": "user", "content": "hi"}]})
    assert made[1].bodies[-1][ADAPTER_KEY] == str(adapter)
    with pytest.raises(Exception, match="embeddings"):
        await served.engine.embed({"input": "x"})

    made[0].gate.set()
    await in_flight
    for _ in range(50):
        if made[0].closed:
            break
        await asyncio.sleep(0.05)
    assert made[0].closed

    await registry.set_fine_tuned([ft])  # unchanged: no reload
    assert len(made) == 2
    await registry.set_fine_tuned([])
    assert len(made) == 3 and made[2].adapters == ()
    with pytest.raises(ModelNotFoundError):
        registry.get(ft.id)
    await registry.close()


async def test_models_list_shows_fine_tunes_to_their_organization(tmp_path: Path) -> None:
    from corral.catalog.models import ModelsService

    catalog = load_catalog(make_catalog(tmp_path, TODAY), shipped=False, today=lambda: TODAY)
    registry = ModelRegistry(catalog, lambda spec: FakeEngine(), load_timeout_s=5)
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF")
    a = FineTunedModel(f"ft:{BASE}:org-a:s:ftjob-a", BASE, adapter, "org-a", 1)
    b = FineTunedModel(f"ft:{BASE}:org-b:s:ftjob-b", BASE, adapter, "org-b", 2)
    await registry.set_fine_tuned([a, b])
    models = ModelsService(registry)
    ids = lambda org: {m.id for m in models.list(org).data if m.id.startswith("ft:")}  # noqa: E731
    assert ids(None) == {a.id, b.id}
    assert ids("org-a") == {a.id}
    card = models.retrieve(a.id, "org-a")
    assert card.parent == BASE and card.owned_by == "org-a"
    assert "embeddings" not in card.capabilities
    with pytest.raises(ModelNotFoundError):
        models.retrieve(a.id, "org-b")
