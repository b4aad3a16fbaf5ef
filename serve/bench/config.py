"""The frozen configuration of one ``tinymim bench`` run, checked before any request is sent."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinymim.errors import ConfigError


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

    urls: tuple[str, ...] = ()
    offline: str | None = None
    artifacts: tuple[str, ...] = ("auto",)  # artifact names, "auto" (what the server would pick) or "all"
    concurrency: tuple[int, ...] = (1, 8, 32)
    duration_s: float = 20.0
    requests: int | None = None
    images: str | None = None
    protocol: str = "v1"
    model: str | None = None
    api_key: str | None = None
    warmup: int = 5
    timeout_s: float = 60.0
    out: str | None = None  # folder for bench.json + bench_cdf.png
    # offline only
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    threads: int | None = None
    cpus: int | None = None
    rounds: int = 3

    def validate(self) -> BenchConfig:
        def require(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

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
