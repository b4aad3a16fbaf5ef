"""Prometheus metrics of one service instance, in its own ``CollectorRegistry``.

A per-app registry (not prometheus-client's global one) lets several apps live in one process (tests) without
"duplicated timeseries" errors. Names follow Prometheus conventions: seconds, ``_total`` counters.

With ``tinymim serve --workers N`` every worker process records into prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before the workers start) and ``/metrics``, whichever
worker answers it, reports all of them: counters and histograms summed, gauges combined as each one's
``multiprocess_mode`` says (queue depth and memory summed over live workers, readiness their minimum).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from serve.timing import STAGES, RequestTiming

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, *_LATENCY_BUCKETS)


def _batch_buckets(max_batch: int) -> tuple[float, ...]:
    """1, 2, 4, ... up to max_batch (each bucket counts batches of size <= le)."""
    b, out = 1, []
    while b < max_batch:
        out.append(float(b))
        b *= 2
    out.append(float(max_batch))
    return tuple(out)


class ServiceMetrics:
    """The service's counters, histograms and gauges (see the names below for what each measures)."""

    def __init__(self, max_batch: int = 32) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tinymim_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "tinymim_request_seconds",
            "end-to-end request latency inside the server",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        stage = Histogram(
            "tinymim_request_stage_seconds",
            "where each inference request's time went, by stage (see serve/timing.py): decode, preprocess, "
            "queue, compute (the runtime call of its batch), encode",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self._stages = [(s, stage.labels(s)) for s in STAGES]  # children resolved once: no lookup per request
        self.inference_seconds = Histogram(
            "tinymim_inference_seconds", "runtime call of one batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "tinymim_batch_size", "samples per executed batch", buckets=_batch_buckets(max_batch), registry=r
        )
        self.queue_depth = Gauge(
            "tinymim_queue_depth", "samples waiting in the batch queue", registry=r, multiprocess_mode="livesum"
        )
        self.rejected = Counter("tinymim_rejected", "samples refused because the queue was full", registry=r)
        self.timeouts = Counter("tinymim_timeouts", "samples cancelled by their request's timeout", registry=r)
        self.ready = Gauge(
            "tinymim_ready", "1 once the model is loaded and warm", registry=r, multiprocess_mode="livemin"
        )
        self.cold_start = Gauge(
            "tinymim_cold_start_seconds",
            "process start -> model loaded, warm and ready to answer (the slowest worker)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.peak_rss = Gauge(
            "tinymim_peak_rss_bytes",
            "peak resident memory of the server process (summed over worker processes)",
            registry=r,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> bytes:
        """The text exposition of this service: this process's registry, or every worker's multiprocess files."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    def worker_exited(self) -> None:
        """Drop this worker's live gauges from the multiprocess files (no-op in a single process)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)

    def observe(self, timing: RequestTiming) -> None:
        """One answered request's stage split."""
        for name, child in self._stages:
            child.observe(getattr(timing, name))
