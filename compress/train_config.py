"""``TrainConfig``: every setting of one supervised training or fine-tuning run (``tinymim train``).

Below the code that runs it (:func:`compress.recipe.train_classifier`) and the CLI glue
(``compress.commands.train``); imports nothing heavy, so ``tinymim train --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tinymim.card import normalisation_problem
from tinymim.configio import field_help, require


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (YAML keys = field names; flags = --field-name)."""

    data: str = field(default="builtin:fashion-mnist", metadata=field_help("builtin:fashion-mnist or an image folder"))
    val_split: float = field(default=0.1, metadata=field_help("validation fraction when the folder has no train/ val/"))
    strict_data: bool = field(default=False, metadata=field_help("unreadable images are an error instead of skipped"))
    limit_train: int | None = field(
        default=None, metadata=field_help("use a class-balanced subset of N training images")
    )
    limit_val: int | None = field(
        default=None, metadata=field_help("use a class-balanced subset of N validation images")
    )
    output: str | None = field(default=None, metadata=field_help("run folder (default: runs/train-<time>)"))
    resume: str | None = field(default=None, metadata=field_help("run folder to continue from its last/ checkpoint"))
    init: str | None = field(
        default=None, metadata=field_help("checkpoint to fine-tune from (run folder, folder or file)")
    )
    arch: str | None = field(
        default=None,
        metadata=field_help(
            "vit_tiny, vit_small, vit_base or any timm ViT name (default: the --init checkpoint's, else vit_tiny)"
        ),
    )
    img_size: int | None = field(
        default=None, metadata=field_help("input side in pixels (default: data's native size, else 224)")
    )
    patch_size: int | None = field(
        default=None,
        metadata=field_help("patch side (default: arch's if it fits, else the largest of 8/7/4/2 dividing img_size)"),
    )
    depth: int | None = field(default=None, metadata=field_help("number of blocks (default: arch's)"))
    num_heads: int | None = field(default=None, metadata=field_help("attention heads (default: arch's)"))
    embed_dim: int | None = field(default=None, metadata=field_help("width (default: arch's)"))
    in_chans: int | None = field(
        default=None,
        metadata=field_help("1 or 3 input channels (default: --init's, else 1 for Fashion-MNIST, 3 for folders)"),
    )
    epochs: int = field(default=10, metadata=field_help("training epochs"))
    warmup_epochs: float | None = field(
        default=None,
        metadata=field_help("linear warm-up in epochs, fractions allowed (default: the recipe's, 10%% of the updates)"),
    )
    batch_size: int = field(default=64, metadata=field_help("images per process per step"))
    base_lr: float | None = field(
        default=None,
        metadata=field_help(
            "lr for batch 256; lr = base_lr * batch * accum * processes / 256 "
            "(default: the recipe's, 4e-3 from scratch, 5e-4 fine-tuning; docs/RECIPES.md)"
        ),
    )
    lr: float | Literal["auto"] | None = field(
        default=None,
        metadata=field_help("absolute peak lr (overrides base_lr), or auto: pick it with a learning-rate range test"),
    )
    min_lr: float = field(default=1e-6, metadata=field_help("lr at the end of the cosine"))
    weight_decay: float | None = field(
        default=None, metadata=field_help("AdamW weight decay, not on 1-D params (default: the recipe's, 0.05)")
    )
    layer_decay: float | None = field(
        default=None,
        metadata=field_help(
            "layer-wise lr decay, 1 turns it off (default: the recipe's, 1 from scratch, 0.65 fine-tuning)"
        ),
    )
    drop_path: float | None = field(
        default=None,
        metadata=field_help("stochastic depth rate of the last block, linear ramp (default: the recipe's, 0.1)"),
    )
    mixup: float | None = field(
        default=None, metadata=field_help("Mixup alpha, 0: off (default: the recipe's, by epochs)")
    )
    cutmix: float | None = field(default=None, metadata=field_help("CutMix alpha, 0: off (default: the recipe's)"))
    label_smoothing: float | None = field(
        default=None, metadata=field_help("label smoothing (default: the recipe's: 0 for short runs, else 0.1)")
    )
    rand_augment: str = field(
        default="auto", metadata=field_help("timm RandAugment spec, 'none' (off) or 'auto' (the recipe's)")
    )
    random_erasing: float | None = field(
        default=None, metadata=field_help("random erasing probability (default: the recipe's)")
    )
    crop_scale_min: float | None = field(
        default=None,
        metadata=field_help("smallest area fraction of RandomResizedCrop (default: the recipe's, by image size)"),
    )
    hflip: float | None = field(
        default=None, metadata=field_help("horizontal flip probability (default: the recipe's)")
    )
    augment: bool = field(
        default=True,
        metadata=field_help(
            "--no-augment turns off every augmentation "
            "(crop, flip, RandAugment, erasing, Mixup/CutMix, label smoothing)"
        ),
    )
    mean: tuple[float, ...] | None = field(
        default=None, metadata=field_help("normalisation mean (default: the --init card's, else the data's)")
    )
    std: tuple[float, ...] | None = field(
        default=None, metadata=field_help("normalisation std (default: the --init card's, else the data's)")
    )
    interpolation: Literal["bicubic", "bilinear", "nearest"] | None = field(
        default=None, metadata=field_help("resize interpolation (default: the --init card's, else bicubic)")
    )
    crop_pct: float | None = field(
        default=None,
        metadata=field_help(
            "eval center-crop fraction (default: the --init card's, else 1.0 built-in data, 0.875 folders)"
        ),
    )
    accum_steps: int = field(default=1, metadata=field_help("gradient accumulation steps per update"))
    clip_grad: float | None = field(default=None, metadata=field_help("clip the gradient norm to this value"))
    amp: Literal["auto", "off", "bf16", "fp16"] = field(
        default="auto", metadata=field_help("mixed precision (auto: bf16/fp16 on CUDA, off on CPU)")
    )
    num_workers: int = field(default=0, metadata=field_help("data-loader worker processes"))
    seed: int = field(default=0, metadata=field_help("random seed"))
    deterministic: bool = field(default=True, metadata=field_help("deterministic kernels"))
    device: str = field(default="auto", metadata=field_help("auto, cpu, cuda or cuda:N"))
    checkpoint_every_steps: int = field(
        default=200, metadata=field_help("also save resume state every N updates (0: epoch ends only)")
    )
    eval_batch_size: int | None = field(default=None, metadata=field_help("evaluation batch (default: 2 x batch_size)"))
    progress: bool = field(default=True, metadata=field_help("show a progress bar"))

    def validate(self) -> None:
        require(bool(self.data), "config key 'data' is empty: give builtin:fashion-mnist or an image folder")
        if not self.data.startswith("builtin:"):
            require(Path(self.data).expanduser().is_dir(), f"config key 'data': folder {self.data} does not exist")
        require(0 <= self.val_split < 1, f"config key 'val_split' must be in [0, 1), got {self.val_split}")
        for key in (
            "limit_train",
            "limit_val",
            "img_size",
            "patch_size",
            "depth",
            "num_heads",
            "embed_dim",
            "eval_batch_size",
        ):
            v = getattr(self, key)
            require(v is None or v >= 1, f"config key '{key}' must be a positive integer, got {v}")
        require(self.in_chans in (None, 1, 3), f"config key 'in_chans' must be 1 or 3, got {self.in_chans}")
        require(self.epochs >= 1, f"config key 'epochs' must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"config key 'batch_size' must be >= 1, got {self.batch_size}")
        require(self.accum_steps >= 1, f"config key 'accum_steps' must be >= 1, got {self.accum_steps}")
        require(
            self.warmup_epochs is None or self.warmup_epochs >= 0,
            f"config key 'warmup_epochs' must be >= 0, got {self.warmup_epochs}",
        )
        require(self.base_lr is None or self.base_lr > 0, f"config key 'base_lr' must be positive, got {self.base_lr}")
        require(self.lr in (None, "auto") or self.lr > 0, f"config key 'lr' must be positive, got {self.lr}")
        require(self.min_lr >= 0, f"config key 'min_lr' must be >= 0, got {self.min_lr}")
        require(
            self.weight_decay is None or self.weight_decay >= 0,
            f"config key 'weight_decay' must be >= 0, got {self.weight_decay}",
        )
        require(
            self.layer_decay is None or 0 < self.layer_decay <= 1,
            f"config key 'layer_decay' must be in (0, 1], got {self.layer_decay}",
        )
        require(
            self.drop_path is None or 0 <= self.drop_path < 1,
            f"config key 'drop_path' must be in [0, 1), got {self.drop_path}",
        )
        require((self.mixup or 0) >= 0 and (self.cutmix or 0) >= 0, "config keys 'mixup' and 'cutmix' must be >= 0")
        require(
            self.label_smoothing is None or 0 <= self.label_smoothing < 1,
            f"config key 'label_smoothing' must be in [0, 1), got {self.label_smoothing}",
        )
        require(
            self.random_erasing is None or 0 <= self.random_erasing <= 1,
            f"config key 'random_erasing' must be in [0, 1], got {self.random_erasing}",
        )
        require(
            self.crop_scale_min is None or 0 < self.crop_scale_min <= 1,
            f"config key 'crop_scale_min' must be in (0, 1], got {self.crop_scale_min}",
        )
        require(self.hflip is None or 0 <= self.hflip <= 1, f"config key 'hflip' must be in [0, 1], got {self.hflip}")
        require(
            self.crop_pct is None or 0 < self.crop_pct <= 1,
            f"config key 'crop_pct' must be in (0, 1], got {self.crop_pct}",
        )
        require(
            self.clip_grad is None or self.clip_grad > 0,
            f"config key 'clip_grad' must be positive, got {self.clip_grad}",
        )
        require(self.num_workers >= 0, f"config key 'num_workers' must be >= 0, got {self.num_workers}")
        require(self.checkpoint_every_steps >= 0, "config key 'checkpoint_every_steps' must be >= 0")
        problem = normalisation_problem(self.mean, self.std)
        require(problem is None, f"config keys 'mean' and 'std': {problem}")
        if self.uses_mixup:
            require(
                self.batch_size % 2 == 0,
                f"Mixup/CutMix need an even batch_size, got {self.batch_size} (or set --mixup 0 --cutmix 0)",
            )
        if self.init is not None:
            require(Path(self.init).exists(), f"config key 'init': checkpoint {self.init} does not exist")
        if self.resume is not None:
            require(Path(self.resume).is_dir(), f"config key 'resume': run folder {self.resume} does not exist")
        if self.device != "auto":
            require(
                self.device == "cpu" or self.device.startswith("cuda"),
                f"config key 'device' is {self.device!r}; allowed: auto, cpu, cuda, cuda:N",
            )

    @property
    def uses_mixup(self) -> bool:
        """Mixup or CutMix is on (a value the recipe has not chosen yet counts as off)."""
        return self.augment and ((self.mixup or 0) > 0 or (self.cutmix or 0) > 0)

    @property
    def lr_auto(self) -> bool:
        return self.lr == "auto"
