"""Training throughput: `tinymim train` (compress.recipe.train_classifier) vs a minimal hand-written loop.

Both train the same model (timm ViT), batch, data (built-in Fashion-MNIST subset with the recipe's
RandAugment/erasing transform), Mixup/CutMix + soft-target CE and timm AdamW with layer decay, in the
same process and thread count, interleaved (tinymim, hand, tinymim, hand, ...). tinymim's img/s is the
train-phase figure it writes to metrics.jsonl (data loading + forward/backward/step + its checkpoints,
no evaluation); the hand loop is timed the same way. Target: ratio >= 0.9.

    python benchmarks/train_throughput.py [--quick]
Writes benchmarks/results/train_throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from compress.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    TransformDataset,
    build_datasets,
    build_mixup,
    train_transform,
)
from compress.models import create_model
from compress.recipe import train_classifier
from compress.train_config import TrainConfig
from tinymim.card import Preprocess
from tinymim.configio import build_config

RESULTS = Path(__file__).parent / "results"


def tinymim_run(base: dict, workdir: Path, i: int) -> float:
    cfg = build_config(TrainConfig, {**base, "output": str(workdir / f"run{i}")})
    run = train_classifier(cfg)
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    return float(record["img_per_s"])


def hand_loop(base: dict) -> float:
    """The plainest correct loop with the same work per step."""
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2

    torch.manual_seed(0)
    data = build_datasets("builtin:fashion-mnist", limit_train=base["limit_train"], limit_val=10)
    pre = Preprocess((1, 28, 28), FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    ds = TransformDataset(data.train, train_transform(pre))
    model, _ = create_model(
        "vit_tiny",
        num_classes=10,
        img_size=28,
        in_chans=1,
        patch_size=base["patch_size"],
        depth=base["depth"],
        drop_path_rate=0.1,
    )
    lr = base["base_lr"] * base["batch_size"] / 256
    opt = create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=0.05, layer_decay=0.65)
    mixup = build_mixup(0.8, 1.0, 0.1, 10)
    crit = SoftTargetCrossEntropy()
    loader = torch.utils.data.DataLoader(ds, batch_size=base["batch_size"], shuffle=True, drop_last=True)
    model.train()
    n, t0 = 0, time.perf_counter()
    for x, y in loader:
        x, y = mixup(x, y)
        loss = crit(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small model and data (a few seconds per run)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quick = args.quick
    base = {
        "limit_train": 256 if quick else 4096,
        "limit_val": 10,
        "depth": 2 if quick else 4,
        "patch_size": 7,
        "batch_size": 64,
        "epochs": 1,
        "base_lr": 5e-4,
        "progress": False,
        "warmup_epochs": 0.2,
        # the hand loop's work per step, pinned (the recipes' defaults depend on the data): MAE fine-tune set
        "layer_decay": 0.65,
        "weight_decay": 0.05,
        "drop_path": 0.1,
        "mixup": 0.8,
        "cutmix": 1.0,
        "label_smoothing": 0.1,
        "rand_augment": "rand-m9-mstd0.5-inc1",
        "random_erasing": 0.25,
        "crop_scale_min": 0.08,
    }
    repeats = args.repeats or (2 if quick else 5)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        hand_loop({**base, "limit_train": 128})  # warm-up: one-time allocator/kernel set-up outside the timings
        for i in range(repeats):
            ours.append(tinymim_run(base, Path(tmp), i))
            theirs.append(hand_loop(base))
            print(f"repeat {i}: tinymim {ours[-1]:.1f} img/s, hand loop {theirs[-1]:.1f} img/s", flush=True)
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    # Headline: best-of-N on each side (like timeit's min): on a shared machine other jobs only ever slow a
    # run down, so the fastest repeat is the least disturbed. Medians and paired ratios are reported too.
    paired = [a / b for a, b in zip(ours, theirs, strict=True)]
    best_ours, best_theirs = max(ours), max(theirs)
    ratio = best_ours / best_theirs
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, fp32"
    )
    cmd = (
        "python benchmarks/train_throughput.py"
        + (" --quick" if quick else "")
        + (f" --repeats {args.repeats}" if args.repeats else "")
    )
    load = os.getloadavg()[0]
    result = {
        "benchmark": "train_throughput",
        "command": cmd,
        "machine": machine,
        "config": base,
        "repeats": repeats,
        "tinymim_img_per_s": ours,
        "hand_loop_img_per_s": theirs,
        "median_tinymim_img_per_s": med_ours,
        "median_hand_loop_img_per_s": med_theirs,
        "paired_ratios": paired,
        "ratio_of_medians": med_ours / med_theirs,
        "median_paired_ratio": statistics.median(paired),
        "best_tinymim_img_per_s": best_ours,
        "best_hand_loop_img_per_s": best_theirs,
        "ratio": ratio,
        "target_ratio": 0.9,
        "meets_target": ratio >= 0.9,
        "load_average_1min": load,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(result, indent=2))
    model_desc = f"ViT-T width 192, depth {base['depth']}, 28 px, patch {base['patch_size']}"
    (RESULTS / "train_throughput.md").write_text(
        "## Training throughput: `tinymim train` vs a hand-written PyTorch loop\n\n"
        f"- Machine: {machine}\n- Command: `{cmd}`\n"
        f"- Workload: {model_desc}, batch {base['batch_size']}, {base['limit_train']} Fashion-MNIST images, "
        "RandAugment + random erasing + Mixup/CutMix, timm AdamW with layer decay; "
        f"{repeats} interleaved repeats (best and median of each)\n"
        f"- Load average at the end: {load:.1f} on {os.cpu_count()} CPUs (shared machine: single repeats vary a lot; "
        "the interleaving spreads that noise over both sides)\n\n"
        "| | img/s best of N | img/s median | ratio (best of N) |\n|---|---|---|---|\n"
        f"| hand-written loop | {best_theirs:.1f} | {med_theirs:.1f} | 1.00 |\n"
        f"| `tinymim train` | {best_ours:.1f} | {med_ours:.1f} | **{ratio:.2f}** "
        f"(target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}) |\n\n"
        f"Ratio of medians {med_ours / med_theirs:.2f}; paired ratios per repeat (tinymim / the hand loop run right "
        "after it): " + ", ".join(f"{r:.2f}" for r in paired) + ". Best-of-N is the headline because other "
        "jobs on this shared machine only ever slow a run down.\n"
    )
    print(
        f"ratio {ratio:.3f} best of {repeats} (tinymim {best_ours:.1f} / hand {best_theirs:.1f} img/s); "
        f"ratio of medians {med_ours / med_theirs:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
