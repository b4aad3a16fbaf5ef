"""``tinymim distill``: TinyMIM relation distillation (and the paper's baselines) from a teacher.

    tinymim distill --teacher runs/teacher --student vit_tiny --data builtin:fashion-mnist --method relation
    tinymim distill --teacher vit_base_patch16_224 --teacher-weights mae_base.pth \
        --teacher-mean 0.485,0.456,0.406 --teacher-std 0.229,0.224,0.225 --data ./images --student vit_tiny
    tinymim distill --config distill.yaml          # YAML keys = the flags; ``stages`` for a chain

Output: a run folder whose last/ (and best/) hold the student's weights and a card with task "backbone"
and ``distilled_block_heads``; ``tinymim train --init RUN`` fine-tunes it. With ``stages`` (YAML only), each
stage's student becomes the next stage's teacher (teacher -> ViT-S -> ViT-T), one run folder per stage.
Torch is imported inside functions only.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compress.configio import add_config_arguments, build_config, config_from_args, config_to_dict, field_help, require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Every setting of one distillation run (METHOD.md sections 1-3); unknown keys are rejected."""

    teacher: str = field(default="", metadata=field_help("teacher: tinymim checkpoint/run folder, or a timm name"))
    teacher_weights: str | None = field(default=None, metadata=field_help("weights file for a timm-name teacher"))
    teacher_mean: tuple[float, ...] | None = field(
        default=None, metadata=field_help("teacher input mean (required for a timm-name teacher; overrides the card)")
    )
    teacher_std: tuple[float, ...] | None = field(default=None, metadata=field_help("teacher input std"))
    teacher_img_size: int | None = field(default=None, metadata=field_help("teacher input size (timm-name teacher)"))
    teacher_in_chans: int | None = field(
        default=None, metadata=field_help("teacher input channels (default: from weights)")
    )
    teacher_depth: int | None = field(default=None, metadata=field_help("teacher depth (timm-name teacher)"))
    teacher_embed_dim: int | None = field(default=None, metadata=field_help("teacher width (timm-name teacher)"))
    teacher_num_heads: int | None = field(default=None, metadata=field_help("teacher head count (timm-name teacher)"))
    teacher_patch_size: int | None = field(default=None, metadata=field_help("teacher patch size (timm-name teacher)"))
    teacher_block: int | None = field(
        default=None,
        metadata=field_help(
            "teacher block to distil, 1-based (negative: from the end); default last, or 3/4 depth beyond 12 blocks"
        ),
    )
    student: str = field(
        default="vit_tiny", metadata=field_help("student architecture (vit_tiny, vit_small, timm ViT)")
    )
    student_img_size: int | None = field(default=None, metadata=field_help("student input size (default: teacher's)"))
    student_patch_size: int | None = field(default=None, metadata=field_help("student patch size (default: teacher's)"))
    student_depth: int | None = field(default=None, metadata=field_help("student depth override"))
    student_embed_dim: int | None = field(default=None, metadata=field_help("student width override"))
    student_num_heads: int | None = field(default=None, metadata=field_help("student head count override"))
    student_mean: tuple[float, ...] | None = field(
        default=None, metadata=field_help("student input mean (default: the data's statistics)")
    )
    student_std: tuple[float, ...] | None = field(default=None, metadata=field_help("student input std"))
    data: str = field(
        default="builtin:fashion-mnist",
        metadata=field_help(
            "builtin:fashion-mnist, a class-folder dataset, or a flat folder of unlabelled images "
            "(labels are used only by logits with alpha < 1)"
        ),
    )
    strict_data: bool = field(default=False, metadata=field_help("unreadable images are an error instead of skipped"))
    val_split: float = field(default=0.1, metadata=field_help("validation fraction for a flat class-folder dataset"))
    limit_train: int | None = field(default=None, metadata=field_help("use a class-balanced subset of N train images"))
    limit_val: int | None = field(
        default=None, metadata=field_help("use a class-balanced subset of N validation images")
    )
    method: str = field(
        default="relation",
        metadata=field_help(
            "method or weighted methods: relation | feature | cls_token | logits | logits_hard, "
            "e.g. relation:1,logits:0.5"
        ),
    )
    temperature: float = field(default=4.0, metadata=field_help("logits method: KD temperature T (loss x T^2)"))
    alpha: float = field(default=0.5, metadata=field_help("logits method: weight of KD vs the label loss"))
    epochs: int = field(default=100, metadata=field_help("distillation epochs"))
    warmup_epochs: float | None = field(
        default=None,
        metadata=field_help("linear warm-up epochs, then cosine to 0 (default: 5%% of epochs, the paper's 15 of 300)"),
    )
    batch_size: int = field(default=256, metadata=field_help("batch size per process"))
    base_lr: float = field(default=1.5e-4, metadata=field_help("lr = base_lr x total batch / 256"))
    weight_decay: float = field(default=0.05, metadata=field_help("AdamW weight decay (not on 1-D params/biases)"))
    drop_path: float = field(
        default=0.1, metadata=field_help("student drop path, uniform, none on the distilled block")
    )
    crop_scale_min: float = field(default=0.2, metadata=field_help("RandomResizedCrop minimum scale"))
    last_block_init: Literal["random", "identity"] = field(
        default="random",
        metadata=field_help(
            "relation only: the student's last block trains only norm1 and qkv; its attention projection and "
            "MLP stay as initialised: random (the paper) or identity (their output layers zeroed, so the "
            "block passes the distilled features through when fine-tuning starts)"
        ),
    )
    color_jitter: float = field(default=0.4, metadata=field_help("ColorJitter strength on the student's view"))
    amp: Literal["auto", "off", "bf16", "fp16"] = field(default="auto", metadata=field_help("mixed precision"))
    device: str = field(default="auto", metadata=field_help("auto, cpu, cuda, cuda:1"))
    num_workers: int = field(default=0, metadata=field_help("data loader workers"))
    seed: int = field(default=0, metadata=field_help("random seed"))
    checkpoint_every_steps: int = field(default=0, metadata=field_help("also save resume state every N updates"))
    output: str = field(default="runs/distill", metadata=field_help("run folder (one sub-folder per stage for chains)"))
    resume: bool = field(default=False, metadata=field_help("continue the run in --output from its last checkpoint"))
    progress: bool = field(default=True, metadata=field_help("show progress bars"))
    stages: tuple[dict, ...] = field(
        default=(),
        metadata=field_help(
            "YAML only: a chain, list of per-stage overrides (e.g. [{student: vit_small}, {student: vit_tiny}])"
        ),
    )

    @property
    def warmup(self) -> float:
        """Warm-up epochs: as given, or 5% of the epochs (METHOD.md section 3: 15 of 300)."""
        return self.epochs * 0.05 if self.warmup_epochs is None else self.warmup_epochs

    def validate(self) -> None:
        from compress.losses import parse_methods

        require(bool(self.teacher), "no teacher given: pass --teacher (a checkpoint folder or a timm name)")
        parse_methods(self.method)
        require(self.epochs > 0 and self.batch_size > 0, "epochs and batch_size must be positive")
        require(self.base_lr > 0 and self.weight_decay >= 0, "base_lr must be > 0 and weight_decay >= 0")
        require(
            self.warmup_epochs is None or 0 <= self.warmup_epochs <= self.epochs,
            f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}",
        )
        require(0 <= self.drop_path < 1, "drop_path must be in [0, 1)")
        require(0 < self.crop_scale_min <= 1, "crop_scale_min must be in (0, 1]")
        require(self.temperature > 0 and 0 <= self.alpha <= 1, "need temperature > 0 and 0 <= alpha <= 1")
        require(self.teacher_block != 0, "teacher_block is 1-based: use 1..depth, or -1 for the last block")
        for key in ("teacher_depth", "teacher_embed_dim", "teacher_num_heads", "teacher_patch_size"):
            value = getattr(self, key)
            require(value is None or value >= 1, f"config key '{key}' must be a positive integer, got {value}")
        for stage in self.stages:
            require(isinstance(stage, dict), f"each stage must be a mapping of config keys, got {stage!r}")
            require(
                "stages" not in stage and "teacher" not in stage,
                "a stage may not set 'stages' or 'teacher' (each stage's teacher is the previous student)",
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DistillConfig)


def run(args: argparse.Namespace) -> int:
    # --resume --output RUN without --config continues with the run's own config.yaml (flags still override).
    if getattr(args, "resume", None) and getattr(args, "output", None) and not getattr(args, "config", None):
        saved = Path(args.output) / "config.yaml"
        if saved.is_file():
            args.config = str(saved)
    cfg = config_from_args(DistillConfig, args)
    run_dir = run_config(cfg)
    print(f"student checkpoint: {run_dir / 'last'}  (fine-tune with: tinymim train --init {run_dir})")
    return 0


def stage_configs(cfg: DistillConfig) -> list[DistillConfig]:
    """The chain as full configs: stage i's teacher is stage i-1's run folder; one folder per stage."""
    if not cfg.stages:
        return [cfg]
    base = {k: v for k, v in config_to_dict(cfg).items() if k != "stages"}
    out: list[DistillConfig] = []
    teacher = cfg.teacher
    for i, overrides in enumerate(cfg.stages, 1):
        values = {**base, **{str(k).replace("-", "_"): v for k, v in overrides.items()}}
        name = str(values.get("student", "student"))
        values.update(teacher=teacher, output=str(Path(cfg.output) / f"stage{i}_{name}"))
        if i > 1:  # the previous student's normalisation is in its card
            values.update(
                teacher_weights=None,
                teacher_mean=None,
                teacher_std=None,
                teacher_block=None,
                teacher_img_size=None,
                teacher_in_chans=None,
                teacher_depth=None,
                teacher_embed_dim=None,
                teacher_num_heads=None,
                teacher_patch_size=None,
            )
        stage = build_config(DistillConfig, values)
        out.append(stage)
        teacher = stage.output
    return out


def run_config(cfg: DistillConfig) -> Path:
    """Run the distillation (or each stage of a chain); returns the final student's run folder."""
    from compress.checkpoint import find_resume_dir
    from compress.distill.run import distill_once

    run_dir = Path(cfg.output)
    stages = stage_configs(cfg)
    for i, stage in enumerate(stages, 1):
        if len(stages) > 1 and stage.resume and find_resume_dir(stage.output) is None:
            log.info("chain stage %d (%s) has not started yet: starting it", i, stage.output)
            stage = dataclasses.replace(stage, resume=False)
        run_dir = distill_once(stage)
    return run_dir


def with_overrides(cfg: DistillConfig, **changes: Any) -> DistillConfig:
    """A validated copy of ``cfg`` with ``changes`` (for the Python API and the ablation)."""
    return build_config(DistillConfig, {**dataclasses.asdict(cfg), **changes})
