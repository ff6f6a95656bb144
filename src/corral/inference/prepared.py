"""A generation request checked, resolved and bounded: what metering needs, before it runs.

Every generation service splits in two: ``prepare`` refuses whatever the service would
refuse (unknown fields, bad ``tool_choice``, an unknown model, a prompt over the window)
and computes the bounds once; ``run`` only generates. Metering sits between the two, so
a refused request never takes a rate-limit slot, reserves budget or writes a usage row.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.accounts.metering import Charge
from corral.catalog.registry import ServedModel


@dataclass(frozen=True)
class Prepared:
    served: ServedModel
    charge: Charge
    stream: bool = False
    # Whether the caller asked for the stream's usage chunk (it is metered either way).
    want_usage: bool = False
