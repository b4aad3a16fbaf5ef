"""Optimiser and learning-rate schedule for distillation (docs/METHOD.md section 3).

AdamW, betas (0.9, 0.95), weight decay 0.05 on matrices only (no decay on 1-D parameters and biases),
lr = base_lr x batch / 256; the per-iteration linear warm-up + cosine to 0 is ``compress.engine.cosine_lr``,
applied by ``compress.runner.fit``.
"""

from __future__ import annotations

import torch
from torch import nn


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """The linear scaling rule: base_lr x total batch / 256."""
    return base_lr * batch_size / 256


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float = 0.05, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; 1-D tensors and biases get no weight decay (timm's grouping)."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(model, "adamw", lr=lr, weight_decay=weight_decay, betas=betas)
