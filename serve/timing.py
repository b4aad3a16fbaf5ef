"""Where one request's time went: decode, preprocess, queue, compute, encode (+ the batch sizes it ran in).

Every inference answer carries this split three ways: a standard ``Server-Timing`` header (browser devtools
show it under Timing; durations in milliseconds), the v1 JSON ``timing`` object and the v2 response
``parameters``; the service also observes it in the ``tinymim_request_stage_seconds{stage=...}`` histograms.

Stages, for one request (several images: decode and preprocess are summed over them, queue and compute are
those of its slowest image):

- decode      image bytes -> pixels (PIL), refusing corrupt/oversized images
- preprocess  resize, crop, normalise -> the model's float32 input
- queue       waiting for a batch slot (enqueue -> the batch's runtime call starts)
- compute     the runtime call of the batch the request's samples ran in
- encode      logits -> the response's outputs (softmax, top-k, tensor/BYTES serialisation)
- total       request start (first byte handled by the service) -> response body ready
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

STAGES = ("decode", "preprocess", "queue", "compute", "encode")
SCOPE_START = "tinymim.start"  # ASGI scope key: perf_counter() when the request reached the service (middleware)


@dataclass
class RequestTiming:
    """Seconds per stage of one request; ``start`` is its ``time.perf_counter()`` at arrival."""

    start: float = field(default_factory=time.perf_counter)
    decode: float = 0.0
    preprocess: float = 0.0
    queue: float = 0.0
    compute: float = 0.0
    encode: float = 0.0
    batch_sizes: tuple[int, ...] = ()
    total: float = 0.0

    @classmethod
    def of_request(cls, scope: dict) -> RequestTiming:
        """A request's timing, started when serve.middleware.RequestGuard first saw it (or now)."""
        return cls(start=scope.get(SCOPE_START) or time.perf_counter())

    def finish(self) -> RequestTiming:
        """Stamp the total (call once the response body is built)."""
        self.total = time.perf_counter() - self.start
        return self

    def ms(self) -> dict[str, float]:
        """{"decode_ms": ..., ..., "total_ms": ...}, rounded to microseconds."""
        out = {f"{s}_ms": round(1000 * getattr(self, s), 3) for s in STAGES}
        out["total_ms"] = round(1000 * self.total, 3)
        return out

    def header(self) -> str:
        """The ``Server-Timing`` value: ``decode;dur=0.041, ..., batch;desc="4 4", total;dur=1.2`` (ms).

        ``batch`` lists the size of the batch each of the request's images ran in, space-separated."""
        parts = [f"{s};dur={1000 * getattr(self, s):.3f}" for s in STAGES]
        if self.batch_sizes:
            parts.append(f'batch;desc="{" ".join(str(b) for b in self.batch_sizes)}"')
        parts.append(f"total;dur={1000 * self.total:.3f}")
        return ", ".join(parts)

    def parameters(self) -> dict[str, float | int]:
        """Flat v2 response parameters (the protocol allows only scalar values): ``*_ms`` and ``batch_size``."""
        out: dict[str, float | int] = self.ms()
        out["batch_size"] = max(self.batch_sizes, default=0)
        return out


def parse_server_timing(value: str | None) -> dict[str, float | str]:
    """A ``Server-Timing`` header -> {"decode": ms, ..., "batch": "4"}: what clients (``tinymim bench``) read."""
    out: dict[str, float | str] = {}
    for entry in (value or "").split(","):
        name, *params = (p.strip() for p in entry.split(";"))
        if not name:
            continue
        for p in params:
            key, _, val = p.partition("=")
            if key == "dur":
                try:
                    out[name] = float(val)
                except ValueError:
                    continue
            elif key == "desc":
                out[name] = val.strip('"')
    return out
