"""``tinymim train``: supervised training or fine-tuning of a timm ViT (MAE / TinyMIM fine-tune recipe).

Recipe (docs/METHOD.md section 3, scaled to CPU): AdamW (0.9, 0.999), lr = base_lr * batch / 256 with per-update
linear warm-up then cosine, weight decay 0.05 (none on 1-D params, pos_embed, cls_token), layer-wise lr
decay 0.65, drop path linear to 0.1, Mixup 0.8 / CutMix 1.0 with label smoothing 0.1 (soft-target CE),
RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, global average pooling + fc_norm.
``--no-augment`` turns every augmentation off (tiny data, smoke tests).

CLI glue only: the config is ``compress.train_config.TrainConfig``, the work
``compress.recipe.train_classifier`` (imported when the command runs).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from compress.train_config import TrainConfig
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    # --resume RUN without --config continues with the run's own config.yaml (flags still override).
    if getattr(args, "resume", None) and not getattr(args, "config", None):
        saved = Path(args.resume) / "config.yaml"
        if saved.is_file():
            args.config = str(saved)
    from compress.recipe import train_classifier

    cfg = config_from_args(TrainConfig, args)
    run_dir = train_classifier(cfg)
    if os.environ.get("RANK", "0") == "0":
        print(f"run folder: {run_dir}")
    return 0
