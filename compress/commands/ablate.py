"""``tinymim ablate``: does distillation pay on your data, and which method? (docs/METHOD.md section 5)

    tinymim ablate --teacher runs/teacher --data builtin:fashion-mnist --labelled 1000,5000 --seeds 0,1,2

The label-scarce protocol: every distilled student learns from the teacher on the whole pool of images
(``--data``, labels unused), ``--budget`` epochs, once per (method, seed); each is then fine-tuned on a small
labelled subset (``--labelled`` sizes, drawn per seed from ``--labelled-data``) for ``--finetune-epochs``.
The scratch twin trains the same student on the same labelled subset for the same epochs; scratch_compute
trains it as many image-steps as distillation + fine-tuning together. Every arm is run for every seed;
the report (OUTPUT/ablation.md, .json, .png) gives the mean and spread over seeds and the gain over the
scratch twin. Finished runs are reused and interrupted ones resumed when the command is run again.
Torch is imported lazily.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from compress.configio import add_config_arguments, config_from_args, field_help, require

ARMS = ("scratch", "scratch_compute", "logits", "feature", "cls_token", "relation", "relation+logits")


@dataclass(frozen=True)
class AblateConfig:
    """Settings of one ablation; runs go to OUTPUT/pretrain/<arm>/seed<k> and OUTPUT/n<N>/<arm>/seed<k>."""

    teacher: str = field(default="", metadata=field_help("teacher: tinymim checkpoint/run folder, or a timm name"))
    teacher_weights: str | None = field(default=None, metadata=field_help("weights file for a timm-name teacher"))
    teacher_mean: tuple[float, ...] | None = field(default=None, metadata=field_help("teacher input mean"))
    teacher_std: tuple[float, ...] | None = field(default=None, metadata=field_help("teacher input std"))
    teacher_img_size: int | None = field(default=None, metadata=field_help("teacher input size (timm-name teacher)"))
    teacher_depth: int | None = field(default=None, metadata=field_help("teacher depth (timm-name teacher)"))
    teacher_embed_dim: int | None = field(default=None, metadata=field_help("teacher width (timm-name teacher)"))
    teacher_num_heads: int | None = field(default=None, metadata=field_help("teacher heads (timm-name teacher)"))
    teacher_patch_size: int | None = field(default=None, metadata=field_help("teacher patch (timm-name teacher)"))
    teacher_block: int | None = field(default=None, metadata=field_help("teacher block (1-based); default rule"))
    student: str = field(default="vit_tiny", metadata=field_help("student architecture"))
    student_depth: int | None = field(default=None, metadata=field_help("student depth override"))
    student_embed_dim: int | None = field(default=None, metadata=field_help("student width override"))
    student_num_heads: int | None = field(default=None, metadata=field_help("student head count override"))
    student_patch_size: int | None = field(default=None, metadata=field_help("student patch size (default: teacher's)"))
    data: str = field(
        default="builtin:fashion-mnist",
        metadata=field_help("the pool distillation learns from (labels unused): builtin:fashion-mnist or a folder"),
    )
    pool_limit: int | None = field(default=None, metadata=field_help("use N images of the pool (default: all)"))
    labelled_data: str | None = field(
        default=None, metadata=field_help("labelled data for fine-tuning and validation (default: --data)")
    )
    labelled: tuple[int, ...] = field(
        default=(1000,),
        metadata=field_help("labelled subset sizes to fine-tune on, e.g. 1000,5000 (empty: every labelled image)"),
    )
    val_split: float = field(default=0.1, metadata=field_help("validation fraction for a flat class-folder dataset"))
    limit_val: int | None = field(
        default=None, metadata=field_help("validation images watched during fine-tuning (the final score uses all)")
    )
    methods: tuple[str, ...] = field(
        default=(),
        metadata=field_help(
            "arms to compare (default: all; logits and relation+logits need a classifier teacher): " + ", ".join(ARMS)
        ),
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata=field_help("seeds; every arm runs with each"))
    budget: int = field(default=1, metadata=field_help("distillation epochs over the pool, equal for every method"))
    finetune_epochs: tuple[int, ...] = field(
        default=(30,),
        metadata=field_help("fine-tuning epochs, equal for every arm: one value, or one per labelled subset"),
    )
    batch_size: int = field(default=128, metadata=field_help("distillation batch size"))
    finetune_batch_size: int = field(default=64, metadata=field_help("fine-tuning (and scratch) batch size"))
    distill_base_lr: float = field(default=1.5e-3, metadata=field_help("distillation lr for batch 256"))
    crop_scale_min: float = field(default=0.2, metadata=field_help("distillation RandomResizedCrop minimum scale"))
    temperature: float = field(default=4.0, metadata=field_help("logits arms: KD temperature"))
    logits_weight: float = field(default=1.0, metadata=field_help("relation+logits: weight of the logits loss"))
    last_block_init: Literal["random", "identity"] = field(
        default="random", metadata=field_help("relation students: the last block's untrained parts (see distill)")
    )
    finetune_base_lr: float = field(default=1e-3, metadata=field_help("fine-tuning lr for batch 256"))
    finetune_layer_decay: float = field(default=0.75, metadata=field_help("fine-tuning layer-wise lr decay"))
    scratch_base_lr: float = field(default=2e-3, metadata=field_help("scratch arms' lr for batch 256"))
    finetune_augment: bool = field(default=True, metadata=field_help("augment fine-tuning and scratch training"))
    train_overrides: tuple[str, ...] = field(
        default=(),
        metadata=field_help("key=value settings of tinymim train applied to every fine-tune and scratch run"),
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = field(default="auto", metadata=field_help("mixed precision"))
    device: str = field(default="auto", metadata=field_help("auto, cpu, cuda"))
    output: str = field(default="runs/ablate", metadata=field_help("folder for every run and the report"))
    progress: bool = field(default=True, metadata=field_help("show progress bars"))

    def finetune_epochs_for(self, index: int) -> int:
        """Fine-tuning epochs of the ``index``-th labelled subset."""
        return self.finetune_epochs[index if len(self.finetune_epochs) > 1 else 0]

    def validate(self) -> None:
        require(bool(self.teacher), "no teacher given: pass --teacher")
        for m in self.methods:
            require(m in ARMS, f"unknown ablation arm {m!r}; valid choices: {', '.join(ARMS)}")
        require(len(set(self.methods)) == len(self.methods), f"an arm is listed twice in {self.methods}")
        require(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), "give distinct --seeds, e.g. 0,1,2")
        require(all(n > 0 for n in self.labelled), f"labelled subset sizes must be positive, got {self.labelled}")
        require(self.budget > 0, "budget must be positive")
        require(
            bool(self.finetune_epochs) and all(e > 0 for e in self.finetune_epochs),
            f"finetune_epochs must be positive, got {self.finetune_epochs}",
        )
        require(
            len(self.finetune_epochs) in (1, max(len(self.labelled), 1)),
            f"give one finetune_epochs value or one per labelled subset ({len(self.labelled)}), "
            f"got {self.finetune_epochs}",
        )
        require(self.batch_size > 0 and self.finetune_batch_size > 0, "batch sizes must be positive")
        require(self.pool_limit is None or self.pool_limit > 0, "pool_limit must be positive")
        require(self.logits_weight > 0 and self.temperature > 0, "logits_weight and temperature must be positive")
        for item in self.train_overrides:
            require("=" in item, f"train_overrides takes key=value items, got {item!r}")


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


def run_config(cfg: AblateConfig):  # -> compress.distill.ablation_report.AblationResult
    """Run (or reuse) every arm for every seed and labelled subset, write the report; returns the result."""
    from compress.distill.ablation import run_ablation

    return run_ablation(cfg)
