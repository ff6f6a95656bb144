"""What /v1/models, /v1/deprecations and the pages show, built from the catalog."""

from __future__ import annotations

from typing import Any

from corral.catalog.adapters import FineTunedModel
from corral.catalog.registry import ModelRegistry, ServedModel
from corral.catalog.schema import Snapshot
from corral.core.errors import ModelNotFoundError
from corral.protocol.models import (
    AliasMove,
    Deprecation,
    DeprecationList,
    ModelCard,
    ModelList,
    Pricing,
    Stages,
)


def _or_half(batch: float | None, interactive: float) -> float:
    return interactive / 2 if batch is None else batch


class ModelsService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def _static_card(self, served: ServedModel) -> ModelCard:
        spec = served.spec
        return ModelCard(
            id=spec.id,
            created=spec.created,
            owned_by=spec.owned_by,
            context_window=served.engine.info.context_window,
            capabilities=list(spec.capabilities),
            description=spec.description,
            loaded=True,
            available=True,
        )

    def fine_tuned_card(self, ft: FineTunedModel) -> ModelCard:
        served = self._registry.get(ft.id)
        return ModelCard(
            id=ft.id,
            created=ft.created,
            owned_by=ft.owned_by,
            context_window=served.engine.info.context_window,
            capabilities=[c for c in served.spec.capabilities if c != "embeddings"],
            description=served.spec.description,
            parent=ft.base,
            loaded=self._registry.is_loaded(ft.base),
            available=self._base_callable(ft),
        )

    def snapshot_card(self, snap: Snapshot) -> ModelCard:
        reg = self._registry
        today = reg.today()
        served = reg.get_snapshot(snap)
        spec = served.spec
        return ModelCard(
            id=snap.id,
            created=spec.created,
            owned_by=spec.owned_by,
            context_window=served.engine.info.context_window,
            capabilities=list(snap.capabilities),
            description=snap.description,
            name=snap.family.name,
            snapshot_of=snap.family.id,
            aliases=reg.catalog.aliases_of(snap.id),
            state=snap.state(today),
            stages=Stages(**snap.stages.model_dump()),
            replacement=reg.catalog.replacement_of(snap),
            pricing=Pricing(
                input=spec.price_input_per_m,
                cached_input=spec.price_cached_input_per_m,
                output=spec.price_output_per_m,
                batch_input=_or_half(spec.price_batch_input_per_m, spec.price_input_per_m),
                batch_output=_or_half(spec.price_batch_output_per_m, spec.price_output_per_m),
            ),
            languages=list(snap.family.languages),
            max_context_window=snap.context_window,
            tool_format=spec.tool_format,
            loaded=reg.is_loaded(snap.id),
            available=snap.state(today) != "shutdown" and reg.callable_now(snap),
        )

    def alias_card(self, alias: str) -> ModelCard:
        catalog = self._registry.catalog
        target = catalog.target(alias)
        if target is None:
            raise ModelNotFoundError(f"The alias `{alias}` points to no model.", param="model")
        card = self.snapshot_card(target)
        return card.model_copy(
            update={
                "id": alias,
                "alias_for": target.id,
                "aliases": [],
                "alias_history": [
                    AliasMove(since=m.since, snapshot=m.snapshot, scheduled=m.scheduled)
                    for m in catalog.history(alias)
                ],
            }
        )

    def list(self, org: str | None = None, everything: bool = False) -> ModelList:
        """What a client can call now (clients fill model pickers from it): snapshots whose
        weights are here or whose upstream has a replica that answers, aliases to them,
        fine-tunes of them; ``everything``: the whole catalog, each card saying whether it
        is ``available``. Fine-tunes only of ``org`` when one is given (None: all)."""
        reg = self._registry
        catalog = reg.catalog
        snapshots = [s for s in reg.listed() if everything or reg.callable_now(s)]
        ids = {s.id for s in snapshots}
        cards = [self._static_card(s) for s in reg.static()]
        cards += [self.snapshot_card(s) for s in snapshots]
        targets = {a: catalog.target(a) for a in catalog.aliases()}
        cards += [self.alias_card(a) for a, t in targets.items() if t is not None and t.id in ids]
        cards += [
            self.fine_tuned_card(ft)
            for ft in reg.fine_tuned()
            if (org is None or ft.owned_by == org) and (everything or self._base_callable(ft))
        ]
        return ModelList(data=cards)

    def _base_callable(self, ft: FineTunedModel) -> bool:
        base = self._registry.catalog.snapshots.get(ft.base)
        return base is None or self._registry.callable_now(base)

    def retrieve(self, name: str, org: str | None = None) -> ModelCard:
        reg = self._registry
        for served in reg.static():
            if served.spec.id == name:
                return self._static_card(served)
        fine_tuned = reg.get_fine_tuned(name)
        if fine_tuned is not None and (org is None or fine_tuned.owned_by == org):
            return self.fine_tuned_card(fine_tuned)
        catalog = reg.catalog
        if name in catalog.snapshots and catalog.snapshots[name].state(reg.today()):
            return self.snapshot_card(catalog.snapshots[name])
        if catalog.is_alias(name):
            return self.alias_card(name)
        raise ModelNotFoundError(
            f"The model `{name}` does not exist or you do not have access to it.", param="model"
        )

    def deprecations(self) -> DeprecationList:
        catalog = self._registry.catalog
        today = self._registry.today()
        return DeprecationList(
            data=[
                Deprecation(
                    id=s.id,
                    name=s.family.name,
                    state=s.state(today),
                    deprecated=s.stages.deprecated,
                    shutdown=s.stages.shutdown,
                    replacement=s.replacement,
                    replacement_snapshot=catalog.replacement_of(s),
                )
                for s in catalog.deprecations()
            ]
        )

    def page(self) -> dict[str, Any]:
        """What the /models page shows: the flagship, one row per family, aliases."""
        reg = self._registry
        catalog = reg.catalog
        today = reg.today()
        families = []
        for family_id in sorted(catalog.families):
            target = catalog.target(family_id)
            if target is None:
                continue
            spec = reg.get_snapshot(target).spec
            families.append(
                {
                    "alias": family_id,
                    "name": target.family.name,
                    "snapshot": target.id,
                    "description": target.description,
                    "context_window": target.context_window,
                    "capabilities": list(target.capabilities),
                    "price_input": f"{spec.price_input_per_m:.2f}",
                    "price_cached": f"{spec.price_cached_input_per_m:.3g}",
                    "price_output": f"{spec.price_output_per_m:.2f}",
                    "flagship": target.family.flagship,
                }
            )
        flagship = next((f for f in families if f["flagship"]), None)
        aliases = [
            {"name": a, "target": t.id, "history": catalog.history(a)}
            for a in catalog.aliases()
            if (t := catalog.target(a)) is not None
        ]
        snapshots = [
            {
                "id": s.id,
                "family": s.family.name,
                "state": s.state(today),
                "released": s.stages.released,
                "deprecated": s.stages.deprecated,
                "shutdown": s.stages.shutdown,
            }
            for s in sorted(
                catalog.snapshots.values(), key=lambda s: (s.family.id, s.stages.released)
            )
            if s.state(today) is not None
        ]
        return {
            "today": today,
            "flagship": flagship,
            "families": families,
            "aliases": aliases,
            "snapshots": snapshots,
        }
