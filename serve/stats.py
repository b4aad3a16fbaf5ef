"""Cumulative per-model statistics in the layout of the v2 statistics extension (what perf_analyzer reads).

inference_count counts samples, execution_count counts runtime calls (batches). Durations are nanoseconds.
"queue" = waiting for a batch, "compute_input" = decode + preprocess, "compute_infer" = runtime, and
"compute_output" = post-processing (top-k, encoding). Only ever updated from the event loop thread.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class _Duration:
    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count = 0
        self.ns = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += _ns(seconds)

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


class ModelStats:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        self.stages = {
            k: _Duration() for k in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
        }
        self.batches: dict[int, dict[str, _Duration]] = defaultdict(
            lambda: {k: _Duration() for k in ("compute_input", "compute_infer", "compute_output")}
        )

    def record_batch(self, size: int, infer_s: float) -> None:
        self.execution_count += 1
        self.inference_count += size
        self.last_inference_ms = int(time.time() * 1000)
        self.stages["compute_infer"].add(infer_s)
        self.batches[size]["compute_infer"].add(infer_s)

    def record_request(
        self, *, ok: bool, total_s: float, queue_s: float = 0.0, input_s: float = 0.0, output_s: float = 0.0
    ) -> None:
        if not ok:
            self.stages["fail"].add(total_s)
            return
        self.stages["success"].add(total_s)
        self.stages["queue"].add(queue_s)
        self.stages["compute_input"].add(input_s)
        self.stages["compute_output"].add(output_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {k: d.to_dict() for k, d in self.stages.items()},
            "batch_stats": [
                {"batch_size": size, **{k: d.to_dict() for k, d in stages.items()}}
                for size, stages in sorted(self.batches.items())
            ],
        }
