"""Optimiser and learning-rate schedule for distillation (METHOD.md section 3).

AdamW, betas (0.9, 0.95), weight decay 0.05 on matrices only (no decay on 1-D parameters and biases),
lr = base_lr x batch / 256, linear warm-up then cosine to 0, set every iteration.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """The linear scaling rule: base_lr x total batch / 256."""
    return base_lr * batch_size / 256


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, peak_lr: float, min_lr: float = 0.0) -> float:
    """lr at iteration ``step``: linear from 0 to ``peak_lr`` over ``warmup_steps``, then cosine to ``min_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float = 0.05,
                    betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; 1-D tensors and biases get no weight decay (timm's grouping)."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(model, "adamw", lr=lr, weight_decay=weight_decay, betas=betas)
