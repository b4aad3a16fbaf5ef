"""``tinymim bench [URL ...] [--offline BUNDLE --artifacts all]``: compare served and offline latency in one run.

One table row per offline artifact and per service: p50/p99 latency, best throughput, gate accuracy, cold start
and peak memory; then per service and concurrency level where the server spent its time (Server-Timing).
"""

from __future__ import annotations

import argparse
import json

from serve.bench.config import BenchConfig
from serve.bench.run import run_bench


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser.add_argument
    p("urls", nargs="*", metavar="URL", help="running services to load, e.g. http://127.0.0.1:8000 (several: compared)")
    p("--offline", metavar="BUNDLE", help="time this bundle's artifacts alone (no HTTP); with URLs: also overhead")
    p(
        "--artifacts",
        type=_names,
        default=("auto",),
        help="offline: 'all' (every servable artifact), 'auto' (what the server would pick; default) or names",
    )
    p("--concurrency", type=_ints, default=(1, 8, 32), help="comma-separated concurrency levels (default 1,8,32)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--duration", type=float, default=20.0, help="seconds per concurrency level, and per offline artifact"
    )
    group.add_argument("--requests", type=int, help="requests per level / iterations per batch size (not --duration)")
    p("--images", help="folder of JPEG/PNG images to send (default: synthetic images at the model's size)")
    p("--protocol", choices=["v1", "v2"], default="v1", help="v1 (/v1/classify raw body) or v2 (binary BYTES infer)")
    p("--model", help="model name for v2 (default: asked from the service)")
    p("--api-key", help="API key of the services")
    p("--batch-sizes", type=_ints, default=(1, 2, 4, 8, 16, 32), help="offline: batch sizes to time")
    p("--threads", type=int, help="offline: ONNX Runtime threads (default: --cpus, else all usable cores)")
    p("--cpus", type=int, help="offline: pin each artifact's process to N CPUs, as on a small device")
    p("--rounds", type=int, default=3, help="offline: interleaved rounds, each artifact in a fresh process (default 3)")
    p("--out", help="folder for bench.json and bench_cdf.png (latency CDFs, accuracy vs p50)")


def run(args: argparse.Namespace) -> int:
    cfg = BenchConfig(
        urls=tuple(args.urls),
        offline=args.offline,
        artifacts=args.artifacts,
        concurrency=args.concurrency,
        duration_s=args.duration,
        requests=args.requests,
        images=args.images,
        protocol=args.protocol,
        model=args.model,
        api_key=args.api_key,
        batch_sizes=args.batch_sizes,
        threads=args.threads,
        cpus=args.cpus,
        rounds=args.rounds,
        out=args.out,
    ).validate()
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
