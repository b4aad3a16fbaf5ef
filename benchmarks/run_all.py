"""Run every benchmark script in this folder, then rebuild BENCHMARKS.md from benchmarks/results/*.md.

    python benchmarks/run_all.py            # run all scripts, then assemble
    python benchmarks/run_all.py --assemble # only rebuild BENCHMARKS.md from existing results
    python benchmarks/run_all.py --quick    # pass --quick to each script

Each script writes benchmarks/results/<name>.md (its section) and <name>.json (raw figures). A script
that fails keeps its previous section, marked as stale, so BENCHMARKS.md never silently loses a figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE.parent / "BENCHMARKS.md"
ORDER = [
    "train_throughput",
    "recipes",
    "distill_step",
    "amp_cpu",
    "ablation",
    "ablation_n5000",
    "ablation_arms",
    "ablation_teacher_random",
    "ablation_last_identity",
    "ablation_crop0.5",
    "ablation_ft40",
    "ablation_distill_lr1.5e-4",
    "ablation_teacher_weak",
    "ablation_patch4",
    "ablation_discussion",
    "runtime_latency",
    "serve_latency",
    "serve_profile",
    "quickstart",
    "quickstart_settings",
    "gpu_smoke",
]
SKIP = {"run_all"}


def scripts() -> list[Path]:
    found = [p for p in HERE.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_")]
    return sorted(found, key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available, Python {platform.python_version()}"


def assemble() -> None:
    sections = sorted(RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    parts = [
        "# Benchmarks",
        "",
        "Every figure below was produced by the command shown with it; `make bench` reruns them all and",
        "rewrites this file (`python benchmarks/run_all.py --assemble` only re-collects the sections).",
        "Speeds are compared within one run and reported as ratios, with the absolute numbers beside them:",
        "these machines are noisy, absolute times are not stable between runs.",
        "",
        f"Assembled {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on: {machine()}.",
        "",
        "Not measured yet (no NVIDIA GPU was available to the sessions that wrote these figures): bf16 ViT-S",
        "training at 224 px (`tinymim train --device cuda --amp bf16`), the ViT-B -> ViT-T distillation step at 224 px",
        "(`python benchmarks/distill_step.py --preset vit_b --device cuda --amp bf16`), the served GPU p50/p99 at",
        "concurrency 1 and 32, and everything in the GPU smoke check below: ONNX Runtime CUDA FP16 and TensorRT",
        "FP16/INT8 builds, gate and latency for ViT-T/ViT-S at 224 px (`make gpu-check`, which writes its section",
        "here when it runs on a GPU). The GPU tests (`pytest -m 'gpu or onnxruntime_cuda or tensorrt' -rs`) skip on",
        "CPU machines, naming the missing part.",
        "",
    ]
    for p in sections:
        parts += [p.read_text().strip(), ""]
    OUT.write_text("\n".join(parts))
    print(f"wrote {OUT} ({len(sections)} sections)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assemble", action="store_true", help="only rebuild BENCHMARKS.md")
    ap.add_argument("--quick", action="store_true", help="pass --quick to each script")
    args = ap.parse_args()
    failed = []
    if not args.assemble:
        for script in scripts():
            cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
            print("$", " ".join(cmd), flush=True)
            if subprocess.call(cmd) != 0:
                failed.append(script.stem)
                stale = RESULTS / f"{script.stem}.md"
                if stale.exists() and "STALE" not in stale.read_text()[:200]:
                    stale.write_text(
                        f"> STALE: the last run of {script.name} failed; figures below are older.\n\n"
                        + stale.read_text()
                    )
    assemble()
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
