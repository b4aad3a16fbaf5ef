"""Latency of runtimes on this machine, measured interleaved so that load from other processes hits all alike.

A measurement is the median wall time of ``repeats`` calls of ``infer`` on a fixed random batch, after
``warmup`` calls. Candidates are measured round-robin (A B C A B C ...), never one after the other, so a
busy neighbour slows every candidate, not just the one that happened to run at that moment.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

InferFn = Callable[[np.ndarray], np.ndarray]


def interleaved_latency(
    candidates: Mapping[str, InferFn],
    *,
    input_shape: tuple[int, int, int],
    batch_sizes: tuple[int, ...],
    repeats: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """{candidate: {str(batch): median ms}} for every candidate and batch size."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {name: {} for name in candidates}
    for b in batch_sizes:
        x = rng.standard_normal((b, *input_shape), dtype=np.float32)
        for fn in candidates.values():
            for _ in range(warmup):
                fn(x)
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(repeats):
            for name, fn in candidates.items():
                t0 = time.perf_counter()
                fn(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
        for name, ts in times.items():
            out[name][str(b)] = round(statistics.median(ts), 3)
    return out
