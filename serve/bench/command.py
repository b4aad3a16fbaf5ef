"""``tinymim bench [URL] [--offline BUNDLE]``: latency percentiles, throughput and errors per concurrency level."""

from __future__ import annotations

import argparse
import json


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser.add_argument
    p("url", nargs="?", help="running service, e.g. http://127.0.0.1:8000")
    p("--offline", metavar="BUNDLE", help="time this bundle's runtime alone (no HTTP); with URL: also report overhead")
    p("--concurrency", type=_ints, default=(1, 8, 32), help="comma-separated concurrency levels (default 1,8,32)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, default=20.0, help="seconds per level (default 20)")
    group.add_argument("--requests", type=int, help="requests per level (instead of --duration)")
    p("--images", help="folder of JPEG/PNG images to send (default: synthetic images at the model's size)")
    p("--protocol", choices=["v1", "v2"], default="v1", help="v1 (/v1/classify raw body) or v2 (binary BYTES infer)")
    p("--model", help="model name for v2 (default: asked from the service)")
    p("--api-key", help="API key of the service")
    p("--artifact", default="auto", help="offline: artifact to time (default auto, as the service picks)")
    p("--batch-sizes", type=_ints, default=(1, 2, 4, 8, 16, 32), help="offline: batch sizes to time")
    p("--threads", type=int, help="offline: ONNX Runtime threads (default: all cores, as the service)")
    p("--out", help="folder for bench.json and bench_cdf.png")


def run(args: argparse.Namespace) -> int:
    from serve.bench.config import BenchConfig
    from serve.bench.run import run_bench

    cfg = BenchConfig(
        url=args.url,
        offline=args.offline,
        concurrency=args.concurrency,
        duration_s=args.duration,
        requests=args.requests,
        images=args.images,
        protocol=args.protocol,
        model=args.model,
        api_key=args.api_key,
        artifact=args.artifact,
        batch_sizes=args.batch_sizes,
        threads=args.threads,
        out=args.out,
    ).validate()
    report = run_bench(cfg)
    print(_table(report))
    if not args.out:
        print(json.dumps(report, indent=2))
    return 0


def _table(report: dict) -> str:
    lines = []
    if "offline" in report:
        o = report["offline"]
        lines.append(
            f"runtime alone: {o['artifact']} on {o['runtime']} (preprocess p50 "
            f"{o['preprocess_per_image']['p50_ms']} ms/image)"
        )
        lines.append(f"{'batch':>6} {'p50 ms':>9} {'p99 ms':>9} {'samples/s':>10}")
        for b in o["batches"]:
            lines.append(f"{b['batch_size']:>6} {b['p50_ms']:>9} {b['p99_ms']:>9} {b['samples_per_s']:>10}")
    if "online" in report:
        on = report["online"]
        lines.append(f"service {on['url']} ({on['protocol']}, model {on['model']}, artifact {on['artifact']})")
        lines.append(f"{'conc':>5} {'ok':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'req/s':>8}  errors")
        for lv in on["levels"]:
            lines.append(
                f"{lv['concurrency']:>5} {lv['ok']:>7} {lv['p50_ms']!s:>8} {lv['p90_ms']!s:>8} "
                f"{lv['p99_ms']!s:>8} {lv['max_ms']!s:>8} {lv['throughput_rps']:>8}  {lv['errors'] or '-'}"
            )
    if "overhead" in report:
        lines.append(f"overhead: {report['overhead']}")
    return "\n".join(lines)
