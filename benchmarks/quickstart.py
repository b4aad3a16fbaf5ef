"""The quickstart end to end, timed: `python benchmarks/quickstart.py [--quick]`.

Runs `tinymim quickstart --fresh` in a subprocess (the README's main command, without the install) and writes
benchmarks/results/quickstart.{md,json}: wall time per stage, teacher vs student size and accuracy, artifact
latencies, served p50/p99. `--quick` uses the `tiny` scale.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny scale (a smoke run)")
    ap.add_argument("--out", default="runs/bench-quickstart")
    args = ap.parse_args()
    size = "tiny" if args.quick else "cpu"
    cmd = [
        sys.executable,
        "-m",
        "tinymim_cli",
        "quickstart",
        "--fresh",
        "--no-progress",
        "--size",
        size,
        "--out",
        args.out,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    summary["process_wall_seconds"] = round(wall, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quickstart.json").write_text(json.dumps(summary, indent=2))
    t, s = summary["teacher"], summary["student"]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items())
    lines = [
        "## Quickstart end to end (benchmarks/quickstart.py)",
        "",
        f"Command: `python benchmarks/quickstart.py{' --quick' if args.quick else ''}` (runs "
        f"`tinymim quickstart --fresh --size {size}`; the install that `make quickstart` does first is not timed).",
        "",
        f"Whole run: **{wall:.0f} s** ({stages}).",
        "",
        "| | size | parameters | test top-1 (Fashion-MNIST test split) | PyTorch batch-1 |",
        "|---|---|---|---|---|",
        f"| teacher | {t['size']} | {t['params'] / 1e6:.2f} M | {t['test_top1']:.2f}% | {t['pytorch_b1_ms']:.2f} ms |",
        f"| student | {s['size']} | {s['params'] / 1e6:.2f} M | {s['test_top1']:.2f}% | {s['pytorch_b1_ms']:.2f} ms |",
        "",
        "| artifact | servable | gate agreement | batch 1 | max batch |",
        "|---|---|---|---|---|",
    ]
    for a in summary["artifacts"]:
        lat = a.get("latency_ms") or {}
        big = max(lat, key=int) if lat else None
        agree = (a.get("gate") or {}).get("agreement")
        lines.append(
            f"| {a['name']} | {'yes' if a['servable'] else 'no: ' + str(a.get('reason'))} | "
            f"{'' if agree is None else f'{100 * agree:.2f}%'} | {lat.get('1', float('nan')):.2f} ms | "
            f"{'' if big is None else f'{lat[big]:.2f} ms (batch {big})'} |"
        )
    served = summary["served"]
    lines += [
        "",
        f"Served `{served['artifact']}` over HTTP: top-1 {served['http_top1']:.2f}% on held-out images, "
        f"{served['http_vs_runtime_agreement']:.1f}% identical to direct runtime predictions (the server forms "
        "its own batches; dynamic INT8 scales activations per batch, so near-ties can flip).",
    ]
    for lv in served["levels"]:
        lines.append(
            f"- concurrency {lv['concurrency']}: p50 {lv['p50_ms']:.2f} ms, p99 {lv['p99_ms']:.2f} ms, "
            f"{lv['throughput_rps']:.1f} req/s"
        )
    lines += [
        "",
        f"Ratios: {summary['param_reduction']:.1f}x fewer parameters; served student "
        f"{summary['speedup_vs_teacher_pytorch']:.1f}x faster at batch 1 than the teacher in PyTorch; accuracy "
        f"cost {summary['accuracy_cost_points']:+.2f} points (teacher minus student).",
    ]
    (RESULTS / "quickstart.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
