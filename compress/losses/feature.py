"""Feature distillation (Wei et al. 2022), the paper's feature baseline (docs/METHOD.md section 2).

    L = SmoothL1_beta=2( W s + b , LN(t) )   averaged over batch x tokens x channels
s: student tokens (B, N, D_s) from its last block; t: teacher tokens (B, N, D_t) from its target block;
W: per-token linear projector D_s -> D_t; LN: LayerNorm without affine parameters (whitening).
SmoothL1_beta(x) = 0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.losses.registry import DistillMethod, register_method


def feature_loss(projected: torch.Tensor, teacher_tokens: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Smooth-L1 (beta) between projected student tokens and LayerNorm-whitened teacher tokens; mean."""
    target = F.layer_norm(teacher_tokens.float(), teacher_tokens.shape[-1:]).detach()
    return F.smooth_l1_loss(projected.float(), target, beta=beta)


@register_method("feature")
class FeatureDistill(DistillMethod):
    """Projected student tokens regress the whitened teacher tokens (all tokens, CLS included)."""

    needs = ("tokens",)

    def __init__(self, *, student_dim: int, teacher_dim: int, beta: float = 2.0, **kwargs: Any) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)
        self.projector = nn.Linear(student_dim, teacher_dim)
        self.beta = beta

    def forward(
        self, student_out: dict[str, Any], teacher_out: dict[str, Any], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return feature_loss(self.projector(student_out["tokens"]), teacher_out["tokens"], self.beta)
