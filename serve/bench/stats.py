"""Latency summaries and the CDF plot shared by the online and offline benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def summarize(latencies_s: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max/mean in milliseconds (None when there are no samples)."""
    if not latencies_s:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    a = np.asarray(latencies_s) * 1000
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }


def plot_comparison(curves: dict[str, list[float]], rows: list[dict[str, Any]], path: str | Path) -> Path:
    """One figure: the latency CDF of every curve (latencies in seconds), and gate accuracy vs p50 per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for label, lat in curves.items():
        if not lat:
            continue
        x = np.sort(np.asarray(lat) * 1000)
        y = np.arange(1, len(x) + 1) / len(x)
        ax.step(x, y, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    points = [r for r in rows if r.get("gate_accuracy") is not None and r.get("p50_ms") is not None]
    for r in points:
        bx.scatter(r["p50_ms"], 100 * r["gate_accuracy"], s=40)
        bx.annotate(
            r["name"].split(" ")[0],
            (r["p50_ms"], 100 * r["gate_accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    missing = [r["name"] for r in rows if r.get("gate_accuracy") is None and "error" not in r]
    bx.set_xlabel("p50 latency (ms; batch 1 alone, lowest concurrency served)")
    bx.set_ylabel("gate top-1 accuracy (%)")
    bx.set_title("accuracy vs latency" + (f"\n(no gate accuracy: {len(missing)} row(s))" if missing else ""))
    bx.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def round_floats(d: Any, nd: int = 3) -> Any:
    if isinstance(d, float):
        return round(d, nd)
    if isinstance(d, dict):
        return {k: round_floats(v, nd) for k, v in d.items()}
    if isinstance(d, list):
        return [round_floats(v, nd) for v in d]
    return d
