"""``tinymim bench [URL ...] [--offline BUNDLE --artifacts all]``: compare served and offline latency in one run.

One table row per offline artifact and per service: p50/p99 latency, best throughput, gate accuracy, cold start
and peak memory; then per service and concurrency level where the server spent its time (Server-Timing).
"""

from __future__ import annotations

import argparse
import json

from serve.bench.config import BenchConfig
from serve.bench.run import run_bench
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, BenchConfig, positional=("urls",))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(BenchConfig, args)
    report = run_bench(cfg)
    print(render(report))
    if not args.out:
        print(json.dumps(report, indent=2))
    return 0


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def render(report: dict) -> str:
    """The comparison table, then the per-level detail of each service, as plain text."""
    lines = ["latency p50/p99: batch 1 for the runtime alone, the lowest concurrency for a service"]
    head = f"{'':44} {'p50 ms':>8} {'p99 ms':>8} {'best /s':>9} {'at':>9} {'top-1':>7} {'cold s':>7} {'RSS MiB':>8}"
    lines.append(head + "  threads/cpus")
    for r in report.get("rows", []):
        if "error" in r:
            lines.append(f"{r['name'][:44]:44} cannot run here: {r['error'][:120]}")
            continue
        acc = None if r["gate_accuracy"] is None else 100 * r["gate_accuracy"]
        lines.append(
            f"{r['name'][:44]:44} {_f(r['p50_ms']):>8} {_f(r['p99_ms']):>8} {_f(r['best_per_s'], '.1f'):>9} "
            f"{r['best_at']:>9} {_f(acc):>7} {_f(r['cold_start_s']):>7} {_f(r['peak_rss_mib'], '.0f'):>8}  "
            f"{r['threads']}/{r['cpus']}"
        )
    if "offline" in report:
        pre = report["offline"]["preprocess_per_image"]
        lines.append(
            f"per image, any artifact: decode p50 {_f(pre['decode']['p50_ms'], '.3f')} ms, "
            f"preprocess p50 {_f(pre['preprocess']['p50_ms'], '.3f')} ms"
        )
    for svc in report.get("online", []):
        lines.append("")
        lines.append(f"{svc['url']} ({svc['protocol']}, model {svc['model']}, artifact {svc['artifact']})")
        stages = ("decode", "preprocess", "queue", "compute", "encode", "total")
        lines.append(
            f"{'conc':>5} {'ok':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'req/s':>8} {'batch':>6}  server ms (mean): "
            + " / ".join(stages)
            + "  errors"
        )
        for lv in svc["levels"]:
            st = lv["server_stages_ms"]
            split = " / ".join(_f(st.get(s), ".3f") for s in stages)
            lines.append(
                f"{lv['concurrency']:>5} {lv['ok']:>7} {_f(lv['p50_ms']):>8} {_f(lv['p90_ms']):>8} "
                f"{_f(lv['p99_ms']):>8} {_f(lv['throughput_rps'], '.1f'):>8} {_f(lv['batch_size_mean'], '.1f'):>6}  "
                f"{split}  {lv['errors'] or '-'}"
            )
    for o in report.get("overhead", []):
        lines.append(
            f"overhead of {o['url']} over {o['artifact']} alone: p50 {_f(o.get('overhead_p50_ms'))} ms, "
            f"throughput {_f(o['throughput_ratio'])} of the best offline batch"
        )
    return "\n".join(lines)
