"""The distillation package's configs: one run (``DistillConfig``) and the label-scarce ablation (``AblateConfig``).

Both derive from ``TeacherStudentConfig``: who teaches and which student learns. The ablation hands those fields
to every distillation run unchanged, so a teacher or student setting added there reaches both commands.
Below the code that runs them (``compress.distill.run``, ``compress.distill.ablation``) and the CLI glue
(``compress.commands``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tinymim.configio import build_config, config_to_dict, field_help, require

ARMS = ("scratch", "scratch_compute", "logits", "feature", "cls_token", "relation", "relation+logits")


@dataclass(frozen=True)
class TeacherStudentConfig:
    """Who teaches and which student learns: the settings a distillation run and the ablation share."""

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

    @property
    def teacher_arch_overrides(self) -> dict[str, int | None]:
        """The teacher's architecture flags, as ``load_teacher(arch_overrides=...)`` takes them."""
        return {
            "depth": self.teacher_depth,
            "embed_dim": self.teacher_embed_dim,
            "num_heads": self.teacher_num_heads,
            "patch_size": self.teacher_patch_size,
        }

    def validate(self) -> None:
        require(bool(self.teacher), "no teacher given: pass --teacher (a checkpoint folder or a timm name)")
        require(self.teacher_block != 0, "teacher_block is 1-based: use 1..depth, or -1 for the last block")
        for key in ("teacher_depth", "teacher_embed_dim", "teacher_num_heads", "teacher_patch_size"):
            value = getattr(self, key)
            require(value is None or value >= 1, f"config key '{key}' must be a positive integer, got {value}")


@dataclass(frozen=True)
class DistillConfig(TeacherStudentConfig):
    """Every setting of one distillation run (docs/METHOD.md sections 1-3); unknown keys are rejected."""

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
    # 10x the paper's 1.5e-4, which is made for batch 4096 x 300 epochs (absolute lr 2.4e-3): scaled down to
    # batch 256 it is too low for a short distillation, 75.81 against 78.40 top-1 after one epoch (docs/METHOD.md
    # section 3; BENCHMARKS.md, ablation_distill_lr1.5e-4).
    base_lr: float = field(
        default=1.5e-3, metadata=field_help("lr = base_lr x total batch / 256 (the paper's 1.5e-4 is for batch 4096)")
    )
    lr: float | Literal["auto"] | None = field(
        default=None,
        metadata=field_help("absolute peak lr (overrides base_lr), or auto: pick it with a learning-rate range test"),
    )
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
        """Warm-up epochs: as given, or 5% of the epochs (docs/METHOD.md section 3: 15 of 300)."""
        return self.epochs * 0.05 if self.warmup_epochs is None else self.warmup_epochs

    def validate(self) -> None:
        from compress.losses import parse_methods  # torch: keep the config light for --help

        super().validate()
        parse_methods(self.method)
        require(self.epochs > 0 and self.batch_size > 0, "epochs and batch_size must be positive")
        require(self.base_lr > 0 and self.weight_decay >= 0, "base_lr must be > 0 and weight_decay >= 0")
        require(self.lr in (None, "auto") or self.lr > 0, f"config key 'lr' must be positive or auto, got {self.lr}")
        require(
            self.warmup_epochs is None or 0 <= self.warmup_epochs <= self.epochs,
            f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}",
        )
        require(0 <= self.drop_path < 1, "drop_path must be in [0, 1)")
        require(0 < self.crop_scale_min <= 1, "crop_scale_min must be in (0, 1]")
        require(self.temperature > 0 and 0 <= self.alpha <= 1, "need temperature > 0 and 0 <= alpha <= 1")
        for stage in self.stages:
            require(isinstance(stage, dict), f"each stage must be a mapping of config keys, got {stage!r}")
            require(
                "stages" not in stage and "teacher" not in stage,
                "a stage may not set 'stages' or 'teacher' (each stage's teacher is the previous student)",
            )


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


def with_overrides(cfg: DistillConfig, **changes: Any) -> DistillConfig:
    """A validated copy of ``cfg`` with ``changes`` (for the Python API and the ablation)."""
    return build_config(DistillConfig, {**dataclasses.asdict(cfg), **changes})


@dataclass(frozen=True)
class AblateConfig(TeacherStudentConfig):
    """Settings of one ablation; runs go to OUTPUT/pretrain/<arm>/seed<k> and OUTPUT/n<N>/<arm>/seed<k>.

    The teacher and student fields are ``TeacherStudentConfig``'s, handed unchanged to every distillation run.
    """

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
        super().validate()
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


def teacher_student_values(cfg: TeacherStudentConfig) -> dict[str, Any]:
    """The shared fields of ``cfg`` as a mapping (what the ablation hands to each distillation run)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TeacherStudentConfig)}
