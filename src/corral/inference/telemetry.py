"""Per-request timings (queue, prefill, decode, TTFT, ITL) into logs and Prometheus."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("corral.requests")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ITL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class Telemetry:
    """The metrics of one app (a registry per app: no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r, m = self.registry, ("model",)
        self.requests = Counter(
            "corral_requests", "Requests finished.", ("model", "endpoint", "status"), registry=r
        )
        self.rejected = Counter("corral_rejected", "Requests refused.", ("reason",), registry=r)
        self.prompt_tokens = Counter("corral_prompt_tokens", "Prompt tokens.", m, registry=r)
        self.output_tokens = Counter("corral_output_tokens", "Output tokens.", m, registry=r)
        # Prompt tokens the engine did not compute: read from a slot or the prompt cache
        # (hits; misses are corral_prompt_tokens less these).
        self.cached_tokens = Counter(
            "corral_prompt_cached_tokens", "Prompt tokens read from cache.", m, registry=r
        )
        self.prompt_cache_limit = Gauge(
            "corral_prompt_cache_limit_bytes",
            "RAM each embedded engine's prompt cache may fill (engine.cache_ram_mib).",
            registry=r,
        )
        self.cost = Counter("corral_cost_usd", "Cost charged, USD.", m, registry=r)
        self.ttft = Histogram(
            "corral_ttft_seconds", "Time to first token.", m, buckets=LATENCY_BUCKETS, registry=r
        )
        self.itl = Histogram(
            "corral_itl_seconds", "Inter-token latency.", m, buckets=ITL_BUCKETS, registry=r
        )
        self.duration = Histogram(
            "corral_request_seconds", "Request duration.", m, buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue = Histogram(
            "corral_queue_seconds", "Wait before prefill.", m, buckets=LATENCY_BUCKETS, registry=r
        )
        self.prefill = Histogram(
            "corral_prefill_seconds", "Prompt processing.", m, buckets=LATENCY_BUCKETS, registry=r
        )
        self.decode_rate = Histogram(
            "corral_decode_tokens_per_second",
            "Decode speed per request.",
            m,
            buckets=(5, 10, 20, 40, 60, 80, 100, 150, 200, 400, 800),
            registry=r,
        )
        # llama.cpp's speculative decoding: tokens drafted and how many the model kept
        self.drafted = Counter("corral_draft_tokens", "Tokens drafted.", m, registry=r)
        self.draft_accepted = Counter(
            "corral_draft_accepted_tokens", "Drafted tokens accepted.", m, registry=r
        )
        self.in_flight = Gauge("corral_requests_in_flight", "Admitted, unfinished.", registry=r)
        self.slots_busy = Gauge("corral_engine_slots_busy", "Sequences decoding.", m, registry=r)
        self.queue_depth = Gauge(
            "corral_queue_depth", "Admitted requests not yet decoding.", registry=r
        )
        # Each request's histograms by model, looked up once per model rather than through
        # labels() (validation, a lock) on the way to every first token.
        self._streamed: dict[str, tuple[Histogram, Histogram]] = {}

    def streamed(self, model: str) -> tuple[Histogram, Histogram]:
        """(TTFT, ITL) histograms of one model."""
        pair = self._streamed.get(model)
        if pair is None:
            pair = self._streamed[model] = (self.ttft.labels(model), self.itl.labels(model))
        return pair

    def timer(self, model: str, endpoint: str) -> RequestTimer:
        return RequestTimer(self, model, endpoint)


class RequestTimer:
    """Timings of one request. ``token()`` is on the streaming hot path: keep it cheap."""

    def __init__(self, telemetry: Telemetry, model: str, endpoint: str) -> None:
        self._t = telemetry
        self._model = model
        self._endpoint = endpoint
        self._start = time.perf_counter()
        self._first: float | None = None
        self._last = 0.0
        self._ttft, self._itl = telemetry.streamed(model)
        self._engine: dict[str, Any] = {}

    def token(self) -> None:
        now = time.perf_counter()
        if self._first is None:
            self._first = now
            self._ttft.observe(now - self._start)
        else:
            self._itl.observe(now - self._last)
        self._last = now

    def engine_timings(self, timings: dict[str, Any] | None) -> None:
        if timings:
            self._engine = timings

    @contextmanager
    def cancelled(self) -> Iterator[None]:
        """Log a whole answer whose client left (its generation cancelled) as such."""
        try:
            yield
        except asyncio.CancelledError:
            self.finish(None, "cancelled")
            raise

    def _drafts(self, model: str) -> None:
        drafted = int(self._engine.get("draft_n") or 0)
        if drafted:
            self._t.drafted.labels(model).inc(drafted)
            accepted = int(self._engine.get("draft_n_accepted") or 0)
            self._t.draft_accepted.labels(model).inc(accepted)

    def finish(self, usage: dict[str, Any] | None, status: str = "ok") -> None:
        total = time.perf_counter() - self._start
        t, model = self._t, self._model
        t.requests.labels(model, self._endpoint, status).inc()
        t.duration.labels(model).observe(total)
        usage = usage or {}
        t.prompt_tokens.labels(model).inc(int(usage.get("prompt_tokens", 0)))
        t.output_tokens.labels(model).inc(int(usage.get("completion_tokens", 0)))
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        t.cached_tokens.labels(model).inc(int(cached or 0))
        prefill_s = float(self._engine.get("prompt_ms", 0.0)) / 1000
        decode_s = float(self._engine.get("predicted_ms", 0.0)) / 1000
        queue_s = max(0.0, (self._first - self._start) - prefill_s) if self._first else None
        if self._engine:
            t.prefill.labels(model).observe(prefill_s)
            if queue_s is not None:
                t.queue.labels(model).observe(queue_s)
            rate = self._engine.get("predicted_per_second")
            if rate:
                t.decode_rate.labels(model).observe(float(rate))
            self._drafts(model)
        fields = {
            "model": model,
            "endpoint": self._endpoint,
            "status": status,
            "total_ms": round(total * 1000, 1),
            "ttft_ms": round((self._first - self._start) * 1000, 1) if self._first else None,
            "queue_ms": round(queue_s * 1000, 1) if queue_s is not None else None,
            "prefill_ms": round(prefill_s * 1000, 1),
            "decode_ms": round(decode_s * 1000, 1),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "cached_tokens": cached,
            "draft_tokens": self._engine.get("draft_n"),
            "draft_accepted": self._engine.get("draft_n_accepted"),
        }
        if log.isEnabledFor(logging.INFO):
            line = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            log.info("request done %s", line, extra={"fields": fields})
