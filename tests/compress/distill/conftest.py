"""Tiny timm ViTs for distillation tests (16-32 px, 2 blocks, small widths)."""

from __future__ import annotations

import os

import pytest
import timm
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_vit(
    *,
    depth: int = 2,
    embed_dim: int = 48,
    num_heads: int = 3,
    img_size: int = 16,
    num_classes: int = 10,
    in_chans: int = 1,
    **kw,
) -> torch.nn.Module:
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=img_size,
        patch_size=4,
        depth=depth,
        embed_dim=embed_dim,
        num_heads=num_heads,
        num_classes=num_classes,
        in_chans=in_chans,
        **kw,
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def make_vit():
    """Factory for tiny timm ViTs: ``make_vit(depth=2, embed_dim=48, num_heads=3, img_size=16, ...)``."""
    return tiny_vit


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory):
    """A tiny tinymim teacher checkpoint (ViT, 16 px, 1 channel, 4 heads of width 16, Fashion-MNIST labels)."""
    from compress.checkpoint import save_model
    from compress.data import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD
    from compress.models import create_model
    from tinymim.card import ModelCard, Preprocess

    torch.manual_seed(0)
    model, kw = create_model(
        "vit_small", num_classes=10, img_size=16, in_chans=1, patch_size=4, depth=2, embed_dim=64, num_heads=4
    )
    card = ModelCard(
        "vit_small_patch16_224",
        kw,
        Preprocess((1, 16, 16), FASHION_MNIST_MEAN, FASHION_MNIST_STD),
        FASHION_MNIST_CLASSES,
    )
    return save_model(tmp_path_factory.mktemp("teacher") / "ckpt", model, card)


@pytest.fixture
def tiny_distill(tmp_path, teacher_ckpt):
    """Build a tiny, validated DistillConfig: ``tiny_distill(**overrides)``."""
    from compress.distill.config import DistillConfig
    from tinymim.configio import build_config

    def make(**overrides):
        values = dict(
            teacher=str(teacher_ckpt),
            student="vit_tiny",
            student_depth=2,
            student_embed_dim=32,
            student_num_heads=2,
            limit_train=128,
            limit_val=100,
            epochs=1,
            batch_size=32,
            warmup_epochs=0,
            output=str(tmp_path / "run"),
            progress=False,
            amp="off",
            device="cpu",
        )
        values.update(overrides)
        return build_config(DistillConfig, values)

    return make
