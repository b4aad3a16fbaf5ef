"""The quickstart end to end, timed, over seeds: `python benchmarks/quickstart.py [--quick] [--seeds 0,1]`.

Runs `tinymim quickstart --fresh --seed S` in a subprocess once per seed (the README's main command, without the
install) and writes benchmarks/results/quickstart.{md,json}: wall time per stage, teacher / distilled student /
scratch twin accuracy per seed with the mean, the gain over the scratch twin, size and speed-up, the artifacts
of the first seed run whole by this script and its served p50/p99. `--quick` uses the `tiny` scale.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROWS = (("teacher", "teacher"), ("distilled student", "student"), ("scratch twin", "scratch_twin"))


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PROCESS_FILE = "process.json"  # beside the run's summary.json: how the whole process ran (wall, CPU, cores)


def run_seed(size: str, seed: int, out: Path, reuse: bool) -> dict:
    if reuse and (out / "summary.json").is_file():  # a run finished earlier (e.g. in another locked slot)
        summary = json.loads((out / "summary.json").read_text())
        process = out / PROCESS_FILE  # absent when the run was not started by this script (not one timed run)
        return summary | (json.loads(process.read_text()) if process.is_file() else {})
    cmd = [sys.executable, "-m", "tinymim_cli", "quickstart", "--fresh", "--no-progress"]
    cmd += ["--size", size, "--seed", str(seed), "--out", str(out)]
    t0, cpu0 = time.perf_counter(), _children_cpu_seconds()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    process = {
        "process_wall_seconds": round(time.perf_counter() - t0, 1),
        # CPU seconds the run used (user + system): on a shared machine the wall time also counts waiting for a core
        "process_cpu_seconds": round(_children_cpu_seconds() - cpu0, 1),
        # what the run had: the wall time means little without it (the README's promise is for 2 free cores)
        "cpus_available": len(os.sched_getaffinity(0)),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    (out / PROCESS_FILE).write_text(json.dumps(process, indent=2))
    return summary | process


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def report(runs: list[dict], size: str, seeds: list[int], quick: bool) -> list[str]:
    first = runs[0]
    st = first["setting"]
    # latencies, artifacts and serving from a seed run whole by this script (a reused run's stages may have been
    # timed in another slot, beside other jobs)
    timed = next((r for r in runs if "process_wall_seconds" in r), first)
    seed_arg = ",".join(map(str, seeds))
    lines = [
        "## Quickstart end to end (benchmarks/quickstart.py)",
        "",
        f"Command: `python benchmarks/quickstart.py{' --quick' if quick else ''} --seeds {seed_arg}` (runs "
        f"`tinymim quickstart --fresh --size {size} --seed S` once per seed; the install that `make quickstart` "
        "does first is not timed here).",
        "",
        f"Setting (docs/METHOD.md section 5): teacher trained on {st['teacher_labelled_images']:,} labelled images; "
        f"student distilled (`{st['method']}`) on {st['pool_images']:,} images, labels "
        f"{'unused' if not st['pool_labels_used'] else 'USED'}, then fine-tuned on {st['labelled_images']:,} labelled "
        f"images for {st['finetune_epochs']} epochs; scratch twin: same architecture, same images, same epochs. "
        f"Top-1 of the final weights on {st['test_images']:,} test images.",
        "",
    ]
    for r in runs:
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items())
        if "process_wall_seconds" not in r:  # --reuse of a run not timed by this script: only its stages' times
            lines.append(
                f"- seed {r['seed']}: stages {sum(r['stage_seconds'].values()):.0f} s in all ({stages}; a stage "
                "reused from an earlier run with the same settings shows its original time; not one timed run)."
            )
            continue
        cpus = r.get("cpus_available")
        ran_on = "" if cpus is None else f" on {cpus} CPU core(s), OMP_NUM_THREADS={r.get('omp_num_threads')}"
        cpu = r.get("process_cpu_seconds")
        used = "" if cpu is None else f" ({cpu:.0f} s of CPU time)"
        lines.append(f"- seed {r['seed']}: whole run **{r['process_wall_seconds']:.0f} s**{used}{ran_on} ({stages}).")
    lines += [
        "",
        "| | size | parameters | " + " | ".join(f"top-1 seed {r['seed']}" for r in runs) + " | mean ± sd |",
        "|---|---|---|" + "---|" * len(runs) + "---|",
    ]
    for label, key in ROWS:
        accs = [r[key]["test_top1"] for r in runs]
        row = first[key]
        lines.append(
            f"| {label} | {row['size']} | {row['params'] / 1e6:.2f} M | "
            + " | ".join(f"{a:.2f}%" for a in accs)
            + f" | {_mean_sd(accs)}% |"
        )
    gains = [r["gain_points"] for r in runs]
    gaps = [r["teacher_minus_student_points"] for r in runs]
    held = {name: all(r["checks"][name] for r in runs) for name in first["checks"]}
    lines += [
        "",
        "Gain of distillation (student minus scratch twin, same seed): "
        + ", ".join(f"{g:+.2f}" for g in gains)
        + f" points (mean {statistics.mean(gains):+.2f}); teacher minus student: "
        + ", ".join(f"{g:.2f}" for g in gaps)
        + f" points. {first['param_reduction']:.1f}x fewer parameters; the student runs "
        f"{timed['speedup_pytorch_b1']:.1f}x faster than the teacher in PyTorch at batch 1 "
        f"({timed['student']['pytorch_b1_ms']:.2f} vs {timed['teacher']['pytorch_b1_ms']:.2f} ms, "
        f"seed {timed['seed']}), "
        f"{timed['speedup_served_b1']:.1f}x as the served `{timed['served']['artifact']}` "
        f"({timed['served_artifact_b1_ms']:.2f} ms).",
        "",
        "Held in every seed: " + ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in held.items()),
        "",
        f"Artifacts (seed {timed['seed']}):",
        "",
        "| artifact | servable | gate agreement | batch 1 | max batch |",
        "|---|---|---|---|---|",
    ]
    for a in timed["artifacts"]:
        lat = a.get("latency_ms") or {}
        big = max(lat, key=int) if lat else None
        b1 = f"{lat['1']:.2f} ms" if "1" in lat else "not timed"
        agree = (a.get("gate") or {}).get("agreement")
        lines.append(
            f"| {a['name']} | {'yes' if a['servable'] else 'no: ' + str(a.get('reason'))} | "
            f"{'' if agree is None else f'{100 * agree:.2f}%'} | {b1} | "
            f"{'' if big is None else f'{lat[big]:.2f} ms (batch {big})'} |"
        )
    served = timed["served"]
    lines += [
        "",
        f"Served `{served['artifact']}` over HTTP: top-1 {served['http_top1']:.2f}% on held-out images, "
        f"{served['http_vs_runtime_agreement']:.1f}% identical to direct runtime predictions.",
    ]
    for lv in served["levels"]:
        lines.append(
            f"- concurrency {lv['concurrency']}: p50 {lv['p50_ms']:.2f} ms, p99 {lv['p99_ms']:.2f} ms, "
            f"{lv['throughput_rps']:.1f} req/s"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny scale (a smoke run)")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds, one whole quickstart each")
    ap.add_argument("--out", default="runs/bench-quickstart")
    ap.add_argument("--reuse", action="store_true", help="read the summary of a seed already run in --out")
    args = ap.parse_args()
    size = "tiny" if args.quick else "cpu"
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = [run_seed(size, seed, Path(args.out) / f"seed{seed}", args.reuse) for seed in seeds]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quickstart.json").write_text(json.dumps(runs, indent=2))
    lines = report(runs, size, seeds, args.quick)
    (RESULTS / "quickstart.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
