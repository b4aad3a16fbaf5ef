"""The frozen configuration of one ``tinymim bench`` run, checked before any request is sent."""

from __future__ import annotations

from dataclasses import dataclass

from tinymim.errors import ConfigError


@dataclass(frozen=True)
class BenchConfig:
    """url: a running service (http://host:port); offline: a bundle folder to time its runtime alone.

    Give either or both: with both, the report also states the service's own overhead (served p50 at the
    lowest concurrency minus the runtime's batch-1 p50). ``requests`` (total per concurrency level) takes
    precedence over ``duration_s`` (seconds per level).
    """

    url: str | None = None
    offline: str | None = None
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
    artifact: str = "auto"
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    threads: int | None = None

    def validate(self) -> BenchConfig:
        def require(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        require(self.url is not None or self.offline is not None, "give a service URL, --offline BUNDLE, or both")
        if self.url is not None:
            require(
                self.url.startswith(("http://", "https://")),
                f"URL must start with http:// or https://, got {self.url!r}",
            )
        require(self.protocol in ("v1", "v2"), f"--protocol must be v1 or v2, got {self.protocol!r}")
        require(
            len(self.concurrency) > 0 and all(c >= 1 for c in self.concurrency),
            f"--concurrency needs positive integers, got {self.concurrency}",
        )
        require(self.duration_s > 0, f"--duration must be positive, got {self.duration_s}")
        require(self.requests is None or self.requests >= 1, f"--requests must be >= 1, got {self.requests}")
        require(self.warmup >= 0, "--warmup must be >= 0")
        require(len(self.batch_sizes) > 0 and all(b >= 1 for b in self.batch_sizes), "--batch-sizes must be positive")
        return self
