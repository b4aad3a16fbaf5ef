"""bf16 autocast vs fp32 for training on a CPU: one optimiser step of the quickstart's teacher and student.

The quickstart trains its teacher and distils with ``amp`` bf16 on a CPU that computes bf16 natively
(AVX512-BF16 or AMX; ``compress.engine.cpu_has_native_bf16``) and fp32 elsewhere, and keeps its student-sized
stages in fp32 (``tinymim_cli.quickstart_training.teacher_amp``). This measures why: the same model, batch
and AdamW step, fp32 and bf16 autocast interleaved round by round, reported as the fp32 / bf16 time ratio
(> 1: bf16 is faster). Sizes are the quickstart's `cpu` scale (tinymim_cli/quickstart_config.py).

    python benchmarks/amp_cpu.py                 # 2 torch threads (the 2-core machine), 6 rounds
    python benchmarks/amp_cpu.py --threads 1
    python benchmarks/amp_cpu.py --quick         # 2 rounds

Accuracy at bf16 is not measured here: BENCHMARKS.md, "Quickstart end to end", has the trained runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compress.engine import autocast, cpu_has_native_bf16
from tinymim_cli.quickstart_config import SCALES
from tinymim_cli.quickstart_training import scale_models

RESULTS = Path(__file__).resolve().parent / "results"


def models() -> dict[str, tuple[torch.nn.Module, int]]:
    """name -> (model, batch size) at the quickstart's cpu scale."""
    teacher, student = scale_models("cpu")
    return {
        "teacher": (teacher, SCALES["cpu"]["teacher"]["batch_size"]),
        "student": (student, SCALES["cpu"]["labelled"]["batch_size"]),
    }


def time_steps(model: torch.nn.Module, batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Seconds per optimiser step, fp32 and bf16 autocast, interleaved (each round times both)."""
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    modes = {"fp32": None, "bf16": torch.bfloat16}

    def step(dtype: torch.dtype | None) -> None:
        with autocast(torch.device("cpu"), dtype):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for dtype in modes.values():  # warm-up: kernels chosen, buffers allocated
        step(dtype)
        step(dtype)
    total = dict.fromkeys(modes, 0.0)
    for _ in range(rounds):
        for name, dtype in modes.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step(dtype)
            total[name] += time.perf_counter() - t0
    return {name: total[name] / (rounds * steps) for name in modes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=2, help="steps per mode per round")
    ap.add_argument("--quick", action="store_true", help="2 rounds")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    native = cpu_has_native_bf16()
    rows: list[dict[str, Any]] = []
    for name, (model, batch) in models().items():
        sec = time_steps(model, batch, rounds, args.steps)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "params": params, "batch": batch, **sec, "ratio": sec["fp32"] / sec["bf16"]})
        print(f"{name}: fp32 {sec['fp32'] * 1e3:.1f} ms/step, bf16 {sec['bf16'] * 1e3:.1f} ms/step", flush=True)
    cpu = platform.processor() or platform.machine()
    result = {"threads": args.threads, "rounds": rounds, "native_bf16": native, "cpu": cpu, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "amp_cpu.json").write_text(json.dumps(result, indent=2))
    cmd = " ".join(["python benchmarks/amp_cpu.py", *sys.argv[1:]])  # as it was called
    lines = [
        "## bf16 autocast vs fp32 for CPU training (benchmarks/amp_cpu.py)",
        "",
        f"Command: `{cmd}` ({args.threads} torch thread(s), {rounds} interleaved rounds of {args.steps} AdamW steps "
        f"per mode; random 28 px batches). This CPU computes bf16 natively: {'yes' if native else 'NO (emulated)'}.",
        "",
        "| model (quickstart cpu scale) | parameters | batch | fp32 ms/step | bf16 ms/step | fp32 / bf16 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['batch']} | {r['fp32'] * 1e3:.1f} | "
            f"{r['bf16'] * 1e3:.1f} | {r['ratio']:.2f}x |"
        )
    lines += [
        "",
        "Hence the quickstart's `--amp auto`: bf16 for the teacher and distillation stages on a CPU with native "
        "bf16, fp32 for the student-sized fine-tune and scratch stages (where bf16 gains nothing).",
    ]
    (RESULTS / "amp_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
