"""Training and evaluation transforms (timm ``create_transform``) and Mixup/CutMix (timm ``Mixup``).

``eval_transform(preprocess)`` is the card's preprocessing; it produces the same tensors as
``serve.preprocess.Preprocessor`` (pinned by tests/compress/test_transforms.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinymim.card import Preprocess


def eval_transform(preprocess: Preprocess) -> Callable[[Any], Any]:
    """PIL image -> float tensor (C, H, W): resize shorter side to floor(size/crop_pct), center crop, normalise."""
    from timm.data import create_transform

    return create_transform(
        input_size=tuple(preprocess.input_size),
        is_training=False,
        interpolation=preprocess.interpolation,
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
        crop_pct=preprocess.crop_pct,
        crop_mode="center",
    )


def train_transform(
    preprocess: Preprocess,
    *,
    rand_augment: str | None = "rand-m9-mstd0.5-inc1",
    random_erasing: float = 0.25,
    hflip: float = 0.5,
    crop_scale: tuple[float, float] = (0.08, 1.0),
) -> Callable[[Any], Any]:
    """RandomResizedCrop(scale) + flip + RandAugment + normalise + random erasing (timm's training pipeline).

    ``rand_augment=None`` and ``random_erasing=0`` turn those off (useful on tiny data).
    """
    from timm.data import create_transform

    if rand_augment and "inc1" in rand_augment and "mmax" not in rand_augment:
        # timm's PosterizeIncreasing keeps 0 bits at magnitude 10, which Pillow >= 10 rejects (ValueError);
        # capping the sampled magnitude at 9 keeps >= 1 bit and changes little else.
        rand_augment += "-mmax9"
    return create_transform(
        input_size=tuple(preprocess.input_size),
        is_training=True,
        interpolation=preprocess.interpolation,
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
        auto_augment=rand_augment or None,
        re_prob=random_erasing,
        re_mode="pixel",
        re_count=1,
        hflip=hflip,
        vflip=0.0,
        scale=tuple(crop_scale),
        color_jitter=None,
    )


def build_mixup(mixup: float, cutmix: float, label_smoothing: float, num_classes: int) -> Any | None:
    """timm ``Mixup`` (batch-level, soft targets) or None when both alphas are 0."""
    if mixup <= 0 and cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing, num_classes=num_classes)
