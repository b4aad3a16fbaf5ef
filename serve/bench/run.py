"""``run_bench(cfg) -> dict``: the code behind ``tinymim bench`` (the quickstart calls it directly).

The report compares everything measured in one table (``rows``): one row per offline artifact (batch-1
latency of the runtime alone, best batch throughput) and one per service (latency at its lowest concurrency,
best throughput over the levels), each with its gate accuracy, cold start and peak memory. With ``out`` set,
``bench.json`` and one figure (``bench_cdf.png``: latency CDF per row, gate accuracy vs p50) are written.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from serve.bench.config import BenchConfig
from serve.bench.offline import run_offline
from serve.bench.online import run_online
from serve.bench.stats import plot_comparison, round_floats

log = logging.getLogger(__name__)


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the offline and/or online benchmark; write bench.json and bench_cdf.png under ``cfg.out`` if set.

    Returns ``{"rows": [...], "offline": {...artifacts...}, "online": [...per URL...], "overhead": [...]}``
    (keys present for what ran). Latencies are in milliseconds.
    """
    cfg.validate()
    report: dict[str, Any] = {}
    curves: dict[str, list[float]] = {}
    if cfg.offline:
        report["offline"] = run_offline(cfg)
    if cfg.urls:
        report["online"] = asyncio.run(run_online(cfg))
    rows = []
    for art in (report.get("offline") or {}).get("artifacts", []):
        rows.append(_offline_row(art, curves))
    for svc in report.get("online", []):
        rows.append(_online_row(svc, curves))
    report["rows"] = rows
    if "online" in report and "offline" in report:
        report["overhead"] = [o for svc in report["online"] if (o := _overhead(svc, report["offline"]))]
    report = round_floats(report)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(report, indent=2))
        report["cdf_png"] = str(plot_comparison(curves, rows, out / "bench_cdf.png"))
        log.info("wrote %s and %s", out / "bench.json", report["cdf_png"])
    return report


def _offline_row(art: dict[str, Any], curves: dict[str, list[float]]) -> dict[str, Any]:
    name = f"{art['artifact']} (runtime alone)"
    if "error" in art:
        return {"name": name, "error": art["error"]}
    b1 = next((b for b in art["batches"] if b["batch_size"] == 1), art["batches"][0])
    for b in art["batches"]:
        lat = b.pop("_latencies")
        if b is b1:
            curves[f"{name}, batch {b['batch_size']}"] = lat
    return {
        "name": name,
        "artifact": art["artifact"],
        "runtime": art["runtime"],
        "latency_at": f"batch {b1['batch_size']}",
        "p50_ms": b1["p50_ms"],
        "p99_ms": b1["p99_ms"],
        "best_per_s": art["best_samples_per_s"],
        "best_at": f"batch {art['best_batch_size']}",
        "gate_accuracy": art["gate_accuracy"],
        "cold_start_s": art["cold_start_s"],
        "peak_rss_mib": art["peak_rss_bytes"] / 2**20,
        "threads": art["threads"],
        "cpus": len(art["cpus"]),
    }


def _online_row(svc: dict[str, Any], curves: dict[str, list[float]]) -> dict[str, Any]:
    levels = svc["levels"]
    low = min(levels, key=lambda lv: lv["concurrency"])
    best = max(levels, key=lambda lv: lv["throughput_rps"])
    name = f"{svc['artifact']} served at {svc['url']}"
    for lv in levels:
        lat = lv.pop("_latencies")
        if lv is low:
            curves[f"{name}, {svc['protocol']} c={lv['concurrency']}"] = lat
    rss = svc.get("peak_rss_bytes")
    return {
        "name": name,
        "artifact": svc["artifact"],
        "runtime": svc["runtime"],
        "latency_at": f"c={low['concurrency']}",
        "p50_ms": low["p50_ms"],
        "p99_ms": low["p99_ms"],
        "best_per_s": best["throughput_rps"],
        "best_at": f"c={best['concurrency']}",
        "gate_accuracy": svc.get("gate_accuracy"),
        "cold_start_s": svc.get("cold_start_s"),
        "peak_rss_mib": rss / 2**20 if rss else None,
        "threads": svc.get("threads"),
        "cpus": svc.get("cpus"),
        "server_stages_ms": low["server_stages_ms"],
    }


def _overhead(svc: dict[str, Any], offline: dict[str, Any]) -> dict[str, Any] | None:
    """A service vs the offline timing of the artifact it serves: p50 at its lowest concurrency minus the
    runtime's batch-1 p50; its best throughput over the runtime's best batch throughput."""
    art = next((a for a in offline["artifacts"] if a.get("artifact") == svc["artifact"] and "error" not in a), None)
    if art is None:
        return None
    levels = svc["levels"]
    low = min(levels, key=lambda lv: lv["concurrency"])
    b1 = next((b for b in art["batches"] if b["batch_size"] == 1), None)
    out: dict[str, Any] = {"url": svc["url"], "artifact": svc["artifact"]}
    if b1 and low["p50_ms"] is not None:
        out["served_p50_ms"] = low["p50_ms"]
        out["runtime_p50_ms"] = b1["p50_ms"]
        out["overhead_p50_ms"] = low["p50_ms"] - b1["p50_ms"]
    out["served_best_rps"] = max(lv["throughput_rps"] for lv in levels)
    out["throughput_ratio"] = out["served_best_rps"] / art["best_samples_per_s"]
    return out
