"""Time a bundle's runtime alone (no HTTP, no queue): what the service adds is measured against this.

For each batch size: latency percentiles of ``runtime.infer`` on a fixed random batch, and throughput in
samples per second; plus the per-image preprocessing time (decode + resize + normalise) on the same images
the online benchmark sends, so its cost is visible separately.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from serve.bench.config import BenchConfig
from serve.bench.online import load_images
from serve.bench.stats import summarize
from serve.bundle import load_bundle
from serve.preprocess import Preprocessor
from serve.select import select_runtime


def _time(fn, seconds: float, max_iters: int | None, min_iters: int = 5) -> list[float]:
    out: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(out) < min_iters or (time.perf_counter() < t_end if max_iters is None else len(out) < max_iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run_offline(cfg: BenchConfig) -> dict[str, Any]:
    bundle = load_bundle(cfg.offline, verify=True)
    sel = select_runtime(bundle, cfg.artifact, device="auto", threads=cfg.threads)
    pre = Preprocessor.from_card(bundle.preprocess)
    sizes = [b for b in cfg.batch_sizes if b <= min(bundle.max_batch, sel.runtime.max_batch)]
    per_size_s = cfg.duration_s / max(len(sizes), 1)
    rng = np.random.default_rng(0)
    batches = []
    try:
        for b in sizes:
            x = rng.standard_normal((b, *pre.input_shape)).astype(np.float32)
            for _ in range(3):  # warm-up
                sel.runtime.infer(x)
            lat = _time(lambda x=x: sel.runtime.infer(x), per_size_s, cfg.requests)
            batches.append(
                {
                    "batch_size": b,
                    "iters": len(lat),
                    "samples_per_s": b * len(lat) / sum(lat),
                    **summarize(lat),
                    "_latencies": lat,
                }
            )
    finally:
        sel.runtime.close()
    images = load_images(cfg.images, pre.size)
    pre_lat = []
    for _ in range(max(1, 50 // len(images))):
        for im in images:
            t0 = time.perf_counter()
            pre(im)
            pre_lat.append(time.perf_counter() - t0)
    best = max(batches, key=lambda r: r["samples_per_s"]) if batches else None
    return {
        "bundle": str(bundle.root),
        "model": bundle.model_name,
        "artifact": sel.artifact.name,
        "runtime": sel.runtime.name,
        "device": sel.device,
        "batches": batches,
        "preprocess_per_image": summarize(pre_lat),
        "best_samples_per_s": best["samples_per_s"] if best else None,
        "best_batch_size": best["batch_size"] if best else None,
    }
