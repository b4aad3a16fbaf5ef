"""Prometheus metrics of one service instance, in its own ``CollectorRegistry``.

A per-app registry (not prometheus-client's global one) lets several apps live in one process (tests) without
"duplicated timeseries" errors. Names follow Prometheus conventions: seconds, ``_total`` counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        self.queue_seconds = Histogram(
            "tinymim_queue_seconds", "time a sample waited in the batch queue", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.preprocess_seconds = Histogram(
            "tinymim_preprocess_seconds",
            "decode + preprocess time of one request's images",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "tinymim_inference_seconds", "runtime time of one batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "tinymim_batch_size", "samples per executed batch", buckets=_batch_buckets(max_batch), registry=r
        )
        self.queue_depth = Gauge("tinymim_queue_depth", "samples waiting in the batch queue", registry=r)
        self.rejected = Counter("tinymim_rejected", "samples refused because the queue was full", registry=r)
        self.timeouts = Counter("tinymim_timeouts", "samples cancelled by their request's timeout", registry=r)
        self.ready = Gauge("tinymim_ready", "1 once the model is loaded and warm", registry=r)
