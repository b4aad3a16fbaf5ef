"""``tinymim distill``: TinyMIM relation distillation (and the paper's baselines) from a teacher.

    tinymim distill --teacher runs/teacher --student vit_tiny --data builtin:fashion-mnist --method relation
    tinymim distill --teacher vit_base_patch16_224 --teacher-weights mae_base.pth \
        --teacher-mean 0.485,0.456,0.406 --teacher-std 0.229,0.224,0.225 --data ./images --student vit_tiny
    tinymim distill --config distill.yaml          # YAML keys = the flags; ``stages`` for a chain

Output: a run folder whose last/ (and best/) hold the student's weights and a card with task "backbone"
and ``distilled_block_heads``; ``tinymim train --init RUN`` fine-tunes it. With ``stages`` (YAML only), each
stage's student becomes the next stage's teacher (teacher -> ViT-S -> ViT-T), one run folder per stage.

CLI glue only: the config is ``compress.distill.config.DistillConfig``, the work ``compress.distill.run``
(imported when the command runs, so ``--help`` stays light).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.distill.config import DistillConfig
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DistillConfig)


def run(args: argparse.Namespace) -> int:
    # --resume --output RUN without --config continues with the run's own config.yaml (flags still override).
    if getattr(args, "resume", None) and getattr(args, "output", None) and not getattr(args, "config", None):
        saved = Path(args.output) / "config.yaml"
        if saved.is_file():
            args.config = str(saved)
    from compress.distill.run import run_distill

    cfg = config_from_args(DistillConfig, args)
    run_dir = run_distill(cfg)
    print(f"student checkpoint: {run_dir / 'last'}  (fine-tune with: tinymim train --init {run_dir})")
    return 0
