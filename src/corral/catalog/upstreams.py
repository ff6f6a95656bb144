"""Build the engine for a catalog snapshot served by an upstream (a URL, a pool, or
processes corral launches and supervises)."""

from __future__ import annotations

import os
from pathlib import Path

from corral.catalog.schema import ModelSpec
from corral.core.errors import ModelNotAvailableError
from corral.engines.base import EngineInfo
from corral.engines.pool import Pool, PoolSettings, Replica
from corral.engines.supervisor import Supervisor
from corral.engines.upstream import UpstreamEngine


def upstream_engine(spec: ModelSpec, info: EngineInfo, log_dir: Path) -> UpstreamEngine:
    source = spec.upstream
    if source is None:
        raise ModelNotAvailableError(f"`{spec.id}` has no upstream configured.", param="model")
    key = os.environ.get(source.api_key_env) if source.api_key_env else None
    supervisors = []
    if source.launch is not None:
        supervisors = [
            Supervisor(source.launch, name=f"{spec.id}-{i}", log_dir=log_dir, api_key=key)
            for i in range(source.replicas)
        ]
        urls = [s.url + "/v1" for s in supervisors]
    else:
        urls = [u.rstrip("/") for u in source.pool_urls]
    pool = Pool(
        [Replica(url, key) for url in urls],
        PoolSettings(max_concurrent=source.max_concurrent, affinity=source.affinity),
    )
    return UpstreamEngine(
        pool,
        source.model or spec.id,
        info,
        timeout_s=source.timeout_s,
        supervisors=supervisors,
    )
