"""The paper's ablation (Table 8 order) on built-in Fashion-MNIST at a CPU-affordable size.

1. ``tinymim train`` a ViT-S-width teacher (384 wide, 6 heads) on Fashion-MNIST;
2. ``tinymim ablate``: ViT-T-width students (192 wide) pre-trained for the same budget by scratch,
   cls_token, feature, relation and logits, then fine-tuned identically;
3. copy the report to benchmarks/results/ablation.{md,json,png}.

    python benchmarks/ablation.py            # ~25 min on one shared CPU core
    python benchmarks/ablation.py --quick    # ~5 min, smaller everything
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SIZES = {
    # The teacher sees more data than the students (as a pre-trained teacher does); students get a small subset.
    "full": dict(
        teacher_train=24000,
        limit_train=4000,
        limit_val=1000,
        depth=4,
        patch=7,
        teacher_epochs=1,
        budget=3,
        finetune=3,
        batch=64,
    ),
    "quick": dict(
        teacher_train=6000,
        limit_train=1500,
        limit_val=500,
        depth=2,
        patch=7,
        teacher_epochs=1,
        budget=2,
        finetune=2,
        batch=64,
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", default="runs/bench_ablation", help="folder for the runs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--budget", type=int, default=None, help="pre-training epochs per method (default: the size's)")
    ap.add_argument("--name", default="ablation", help="results file name under benchmarks/results/")
    ap.add_argument("--distill-base-lr", type=float, default=1.5e-3, help="distillation lr per 256 images")
    args = ap.parse_args(argv)
    s = dict(SIZES["quick" if args.quick else "full"])
    if args.budget:
        s["budget"] = args.budget
    from compress.commands.ablate import AblateConfig
    from compress.commands.ablate import run_config as ablate
    from compress.commands.train import TrainConfig
    from compress.commands.train import run_config as train
    from compress.configio import build_config

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.time()
    teacher = train(
        build_config(
            TrainConfig,
            dict(
                arch="vit_small",
                img_size=28,
                patch_size=s["patch"],
                depth=s["depth"],
                embed_dim=384,
                num_heads=6,
                limit_train=s["teacher_train"],
                limit_val=s["limit_val"],
                epochs=s["teacher_epochs"],
                batch_size=128,
                lr=1e-3,
                warmup_epochs=0.1,
                layer_decay=1.0,
                augment=False,
                drop_path=0.0,
                device=args.device,
                progress=False,
                output=str(work / "teacher"),
            ),
        )
    )
    t_teacher = time.time() - t0
    result = ablate(
        build_config(
            AblateConfig,
            dict(
                teacher=str(teacher),
                student="vit_tiny",
                student_depth=s["depth"],
                student_embed_dim=192,
                student_num_heads=3,
                limit_train=s["limit_train"],
                limit_val=s["limit_val"],
                budget=s["budget"],
                finetune_epochs=s["finetune"],
                batch_size=s["batch"],
                distill_base_lr=args.distill_base_lr,
                finetune_base_lr=2e-3,
                finetune_layer_decay=0.75,
                finetune_augment=False,
                device=args.device,
                progress=False,
                output=str(work / "ablate"),
            ),
        )
    )
    total = time.time() - t0
    RESULTS.mkdir(exist_ok=True)
    cmd = " ".join(["python benchmarks/ablation.py", *(argv if argv is not None else sys.argv[1:])])
    header = (
        f"## Ablation on Fashion-MNIST (benchmarks/ablation.py)\n\nCommand: `{cmd}` "
        f"(teacher training {t_teacher:.0f} s, everything {total:.0f} s).\n"
        f"Teacher: ViT 384 wide, 6 heads, {s['depth']} blocks, 28 px / patch {s['patch']}, trained with "
        f"`tinymim train` for {s['teacher_epochs']} epoch(s) on {s['teacher_train']} images (no augmentation). "
        f"Students: 192 wide, 3 heads, {s['depth']} blocks, {s['limit_train']} training images. Distillation "
        f"lr {args.distill_base_lr:g}, fine-tuning lr 2e-3 (per 256), no augmentation in fine-tuning (small data). "
        "One seed: "
        "differences of about a point are within noise.\n\n"
    )
    (RESULTS / f"{args.name}.md").write_text(header + result.markdown() + "\n")
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({**result.to_dict(), "command": cmd, "total_s": total, "teacher_train_s": t_teacher}, indent=2)
    )
    shutil.copy(work / "ablate" / "ablation.png", RESULTS / f"{args.name}.png")
    print(result.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
