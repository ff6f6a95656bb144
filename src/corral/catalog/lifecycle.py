"""Lifecycle facts a response carries: which snapshot served, and its deprecation.

The registry computes them with each resolution (``ServedModel.headers``) and whoever
answers with the model sends them: ``x-corral-model`` (the snapshot), ``x-corral-alias``
(the alias the caller used), and for a deprecated snapshot RFC 9745 ``Deprecation``,
RFC 8594 ``Sunset`` and a ``Link`` to its successor.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.catalog.schema import Catalog, Resolution, Snapshot


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lifecycle_headers(catalog: Catalog, resolution: Resolution, today: date) -> dict[str, str]:
    snap = resolution.snapshot
    headers = {"x-corral-model": snap.id}
    if resolution.alias is not None:
        headers["x-corral-alias"] = f"{resolution.alias}; snapshot={snap.id}"
    if snap.state(today) == "deprecated":
        headers.update(deprecation_headers(catalog, snap))
    return headers


def deprecation_headers(catalog: Catalog, snap: Snapshot) -> dict[str, str]:
    headers: dict[str, str] = {}
    if snap.stages.deprecated is not None:
        # RFC 9745: a structured-field date, seconds since the epoch.
        headers["deprecation"] = f"@{int(_midnight(snap.stages.deprecated).timestamp())}"
    if snap.stages.shutdown is not None:
        # RFC 8594: an HTTP-date.
        headers["sunset"] = format_datetime(_midnight(snap.stages.shutdown), usegmt=True)
    links = ['</deprecations>; rel="deprecation"; type="text/html"']
    replacement = catalog.replacement_of(snap)
    if replacement is not None:
        links.insert(0, f'</v1/models/{replacement}>; rel="successor-version"')
    headers["link"] = ", ".join(links)
    return headers
