"""Fixtures: a tiny ViT (32 px, 2 blocks, width 64) briefly trained on Fashion-MNIST, saved as a checkpoint.

Training for ~150 steps gives a model with confident, non-trivial predictions (about 70 % top-1), so the
gate compares meaningful decisions rather than near-ties of a random network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARCH_KWARGS = {
    "img_size": 32,
    "patch_size": 8,
    "depth": 2,
    "num_heads": 2,
    "embed_dim": 64,
    "in_chans": 1,
    "num_classes": 10,
    "global_pool": "avg",
}


def train_tiny(steps: int = 150, seed: int = 0):
    """(model, card) of a tiny ViT trained for ``steps`` SGD steps on Fashion-MNIST at 32 px."""
    import torch

    from compress.data import (
        FASHION_MNIST_CLASSES,
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        build_datasets,
        eval_transform,
    )
    from compress.models import build_from_card
    from tinymim.card import ModelCard, Preprocess

    torch.manual_seed(seed)
    card = ModelCard(
        arch="vit_tiny_patch16_224",
        arch_kwargs=dict(ARCH_KWARGS),
        preprocess=Preprocess((1, 32, 32), tuple(FASHION_MNIST_MEAN), tuple(FASHION_MNIST_STD), "bicubic", 1.0),
        labels=tuple(FASHION_MNIST_CLASSES),
        data={"source": "builtin:fashion-mnist"},
    )
    model = build_from_card(card)
    data = build_datasets("builtin:fashion-mnist", in_chans=1, limit_train=steps * 32, limit_val=10, seed=seed)
    tf = eval_transform(card.preprocess)
    xs = torch.stack([tf(data.train[i][0]) for i in range(len(data.train))])
    ys = torch.tensor(data.train.targets)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xs), (32,))
        loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), card


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint folder (model.safetensors + card.json) written by compress.checkpoint.save_model."""
    import torch

    from compress.checkpoint import save_model

    torch.set_num_threads(1)
    model, card = train_tiny()
    path = tmp_path_factory.mktemp("ckpt") / "tiny-fmnist"
    save_model(path, model, card)
    return path


@pytest.fixture(scope="session")
def exported_bundle(tiny_checkpoint, tmp_path_factory):
    """One full export of the tiny checkpoint (ONNX + both INT8 flavours), shared by the read-only tests."""
    from export.config import ExportConfig
    from export.pipeline import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "b"
    cfg = ExportConfig(
        checkpoint=str(tiny_checkpoint),
        out=str(out),
        formats=("onnx", "onnx-int8"),
        eval_images=200,
        calib_images=64,
        max_batch=8,
        latency_repeats=2,
        threads=1,
        triton_repo=str(out.parent / "triton"),
    )
    return export_bundle(cfg)
