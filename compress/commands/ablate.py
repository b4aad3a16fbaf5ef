"""``tinymim ablate``: does relation distillation beat the alternatives on your data? (the paper's Table 8)

    tinymim ablate --teacher runs/teacher --data builtin:fashion-mnist --student vit_tiny --budget 10

Every method gets the same pre-training budget (``--budget`` epochs, same batch) and then exactly the same
fine-tuning (``tinymim train --init``, ``--finetune-epochs``): scratch (supervised pre-training), cls_token,
feature, relation, and logits when the teacher is a classifier. Writes OUTPUT/ablation.md, ablation.json and
ablation.png (students' validation top-1 with the teacher's for reference). Torch is imported lazily.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from compress.configio import add_config_arguments, config_from_args, field_help, require

METHODS = ("scratch", "cls_token", "feature", "relation", "logits")


@dataclass(frozen=True)
class AblateConfig:
    """Settings of one ablation; each method's runs go to OUTPUT/<method>/{pretrain,finetune}."""

    teacher: str = field(default="", metadata=field_help("teacher: tinymim checkpoint/run folder, or a timm name"))
    teacher_weights: str | None = field(default=None, metadata=field_help("weights file for a timm-name teacher"))
    teacher_mean: tuple[float, ...] | None = field(default=None, metadata=field_help("teacher input mean"))
    teacher_std: tuple[float, ...] | None = field(default=None, metadata=field_help("teacher input std"))
    teacher_img_size: int | None = field(default=None, metadata=field_help("teacher input size (timm-name teacher)"))
    teacher_block: int | None = field(default=None, metadata=field_help("teacher block (1-based); default rule"))
    student: str = field(default="vit_tiny", metadata=field_help("student architecture"))
    student_depth: int | None = field(default=None, metadata=field_help("student depth override"))
    student_embed_dim: int | None = field(default=None, metadata=field_help("student width override"))
    student_num_heads: int | None = field(default=None, metadata=field_help("student head count override"))
    student_patch_size: int | None = field(default=None, metadata=field_help("student patch size (default: teacher's)"))
    data: str = field(default="builtin:fashion-mnist", metadata=field_help("builtin:fashion-mnist or an image folder"))
    val_split: float = field(default=0.1, metadata=field_help("validation fraction for a flat class-folder dataset"))
    limit_train: int | None = field(default=None, metadata=field_help("class-balanced subset of N train images"))
    limit_val: int | None = field(default=None, metadata=field_help("class-balanced subset of N validation images"))
    methods: tuple[str, ...] = field(
        default=(),
        metadata=field_help(
            "methods to compare (default: scratch,cls_token,feature,relation + logits for classifier teachers)"
        ),
    )
    budget: int = field(default=10, metadata=field_help("pre-training epochs, equal for every method"))
    finetune_epochs: int = field(default=10, metadata=field_help("fine-tuning epochs, equal for every method"))
    batch_size: int = field(default=64, metadata=field_help("batch size (pre-training and fine-tuning)"))
    distill_base_lr: float = field(default=1.5e-4, metadata=field_help("distillation lr for batch 256"))
    finetune_base_lr: float = field(default=5e-4, metadata=field_help("fine-tuning (and scratch) lr for batch 256"))
    finetune_layer_decay: float = field(default=0.65, metadata=field_help("fine-tuning layer-wise lr decay"))
    finetune_augment: bool = field(default=True, metadata=field_help("fine-tune with the full augmentation recipe"))
    amp: Literal["auto", "off", "bf16", "fp16"] = field(default="auto", metadata=field_help("mixed precision"))
    device: str = field(default="auto", metadata=field_help("auto, cpu, cuda"))
    seed: int = field(default=0, metadata=field_help("random seed (the same for every method)"))
    output: str = field(default="runs/ablate", metadata=field_help("folder for every run and the report"))
    progress: bool = field(default=True, metadata=field_help("show progress bars"))

    def validate(self) -> None:
        require(bool(self.teacher), "no teacher given: pass --teacher")
        for m in self.methods:
            require(m in METHODS, f"unknown ablation method {m!r}; valid choices: {', '.join(METHODS)}")
        require(self.budget > 0 and self.finetune_epochs > 0, "budget and finetune_epochs must be positive")
        require(self.batch_size > 0, "batch_size must be positive")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, AblateConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(AblateConfig, args)
    result = run_config(cfg)
    print(result.markdown())
    print(
        f"report: {Path(cfg.output) / 'ablation.md'}, {Path(cfg.output) / 'ablation.json'}, "
        f"{Path(cfg.output) / 'ablation.png'}"
    )
    return 0


def run_config(cfg: AblateConfig):  # -> compress.distill.ablation.AblationResult
    """Run every method at the same budget, fine-tune each the same way, write the report; returns the result."""
    from compress.distill.ablation import run_ablation

    return run_ablation(cfg)
