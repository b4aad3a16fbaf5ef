"""The frozen configuration of one ``tinymim bench`` run, checked before any request is sent."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from tinymim.configio import field_help, require


@dataclass(frozen=True)
class BenchConfig:
    """What to measure, and how hard.

    urls: running services (http://host:port), each loaded at every ``concurrency`` level.
    offline: a bundle folder whose ``artifacts`` are timed alone (no HTTP), each in a fresh child process
    (so its cold start, peak memory and CPU set are its own), ``rounds`` times interleaved.
    Give either or both: with both, each service is also compared with the offline timing of the artifact it
    serves (its overhead). ``requests`` (total per concurrency level) takes precedence over ``duration_s``
    (seconds per level; offline: per artifact, split over its batch sizes and rounds).
    ``cpus``/``threads`` emulate a small device for the offline runs: the child is pinned to its first
    ``cpus`` usable CPUs, and ONNX Runtime gets ``threads`` intra-op threads (default: ``cpus``).
    """

    urls: tuple[str, ...] = field(
        default=(), metadata=field_help("running services to load, e.g. http://127.0.0.1:8000 (several: compared)")
    )
    offline: str | None = field(
        default=None,
        metadata=field_help("time this bundle's artifacts alone (no HTTP); with URLs: also overhead"),
    )
    artifacts: tuple[str, ...] = field(
        default=("auto",),
        metadata=field_help("offline: 'all' (every servable artifact), 'auto' (what the server would pick) or names"),
    )
    concurrency: tuple[int, ...] = field(default=(1, 8, 32), metadata=field_help("comma-separated concurrency levels"))
    duration_s: float = field(
        default=20.0,
        metadata=field_help("seconds per concurrency level, and per offline artifact", flag="--duration"),
    )
    requests: int | None = field(
        default=None, metadata=field_help("requests per level / iterations per batch size (wins over --duration)")
    )
    images: str | None = field(
        default=None, metadata=field_help("folder of JPEG/PNG images to send (default: synthetic, at the model's size)")
    )
    protocol: Literal["v1", "v2"] = field(
        default="v1", metadata=field_help("v1 (/v1/classify raw body) or v2 (binary BYTES infer)")
    )
    model: str | None = field(default=None, metadata=field_help("model name for v2 (default: asked from the service)"))
    api_key: str | None = field(default=None, metadata=field_help("API key of the services"))
    warmup: int = field(default=5, metadata=field_help("requests sent to each service before timing starts"))
    timeout_s: float = field(
        default=60.0, metadata=field_help("seconds before one request counts as an error", flag="--timeout")
    )
    out: str | None = field(
        default=None, metadata=field_help("folder for bench.json and bench_cdf.png (latency CDFs, accuracy vs p50)")
    )
    # offline only
    batch_sizes: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 16, 32), metadata=field_help("offline: batch sizes to time")
    )
    threads: int | None = field(
        default=None, metadata=field_help("offline: ONNX Runtime threads (default: --cpus, else all usable cores)")
    )
    cpus: int | None = field(
        default=None, metadata=field_help("offline: pin each artifact's process to N CPUs, as on a small device")
    )
    rounds: int = field(default=3, metadata=field_help("offline: interleaved rounds, each artifact in a fresh process"))

    def validate(self) -> BenchConfig:
        require(bool(self.urls) or self.offline is not None, "give one or more service URLs, --offline BUNDLE, or both")
        for url in self.urls:
            require(url.startswith(("http://", "https://")), f"URL must start with http:// or https://, got {url!r}")
        require(len(set(self.urls)) == len(self.urls), f"a URL is given twice: {', '.join(self.urls)}")
        require(self.protocol in ("v1", "v2"), f"--protocol must be v1 or v2, got {self.protocol!r}")
        require(
            len(self.concurrency) > 0 and all(c >= 1 for c in self.concurrency),
            f"--concurrency needs positive integers, got {self.concurrency}",
        )
        require(self.duration_s > 0, f"--duration must be positive, got {self.duration_s}")
        require(self.requests is None or self.requests >= 1, f"--requests must be >= 1, got {self.requests}")
        require(self.warmup >= 0, "--warmup must be >= 0")
        require(len(self.batch_sizes) > 0 and all(b >= 1 for b in self.batch_sizes), "--batch-sizes must be positive")
        require(len(self.artifacts) > 0, "--artifacts needs at least one name, 'auto' or 'all'")
        require(self.rounds >= 1, f"--rounds must be >= 1, got {self.rounds}")
        require(self.threads is None or self.threads >= 1, f"--threads must be >= 1, got {self.threads}")
        if self.cpus is not None:
            usable = len(os.sched_getaffinity(0))
            require(1 <= self.cpus <= usable, f"--cpus must be in 1..{usable} (the CPUs usable here), got {self.cpus}")
        return self
