"""``run_bench(cfg) -> dict``: the code behind ``tinymim bench`` (the quickstart calls it directly)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from serve.bench.config import BenchConfig
from serve.bench.stats import plot_cdf, round_floats

log = logging.getLogger(__name__)


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the online and/or offline benchmark; write bench.json and bench_cdf.png under ``cfg.out`` if set.

    Returns the report: ``{"online": {...levels...}, "offline": {...batches...}, "overhead": {...}}``
    (keys present for what ran). Latencies are in milliseconds.
    """
    cfg.validate()
    report: dict[str, Any] = {}
    curves: dict[str, list[float]] = {}
    if cfg.offline:
        from serve.bench.offline import run_offline

        report["offline"] = run_offline(cfg)
        for b in report["offline"]["batches"]:
            lat = b.pop("_latencies")
            if b["batch_size"] == 1:
                curves["runtime alone, batch 1"] = lat
    if cfg.url:
        from serve.bench.online import run_online

        report["online"] = asyncio.run(run_online(cfg))
        for lv in report["online"]["levels"]:
            curves[f"{cfg.protocol} concurrency {lv['concurrency']}"] = lv.pop("_latencies")
    if "online" in report and "offline" in report:
        report["overhead"] = _overhead(report)
    report = round_floats(report)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(report, indent=2))
        report["cdf_png"] = str(plot_cdf(curves, out / "bench_cdf.png", "latency CDF"))
        log.info("wrote %s and %s", out / "bench.json", report["cdf_png"])
    return report


def _overhead(report: dict[str, Any]) -> dict[str, Any]:
    """Served p50 at the lowest concurrency vs the runtime's batch-1 p50; best served vs offline throughput."""
    levels = report["online"]["levels"]
    low = min(levels, key=lambda lv: lv["concurrency"])
    b1 = next((b for b in report["offline"]["batches"] if b["batch_size"] == 1), None)
    out: dict[str, Any] = {}
    if b1 and low["p50_ms"] is not None:
        out["served_p50_ms"] = low["p50_ms"]
        out["runtime_p50_ms"] = b1["p50_ms"]
        out["overhead_p50_ms"] = low["p50_ms"] - b1["p50_ms"]
    best_rps = max(lv["throughput_rps"] for lv in levels)
    if report["offline"]["best_samples_per_s"]:
        out["served_best_rps"] = best_rps
        out["throughput_ratio"] = best_rps / report["offline"]["best_samples_per_s"]
    return out
