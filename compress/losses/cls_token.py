"""Class-token distillation, the paper's class-token baseline (docs/METHOD.md section 2).

    L = KL( softmax(c_t) || softmax(P c_s) )   summed over the D_t channels, mean over the batch
c_s (B, D_s), c_t (B, D_t): class tokens of the student's last block and the teacher's target block;
P: linear D_s -> D_t when the widths differ, identity otherwise. Student side via log_softmax.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.losses.registry import DistillMethod, register_method


def cls_token_loss(student_cls: torch.Tensor, teacher_cls: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) over channels, batch mean. Inputs (B, D)."""
    log_t = F.log_softmax(teacher_cls.float(), dim=-1).detach()
    log_s = F.log_softmax(student_cls.float(), dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")


@register_method("cls_token")
class ClsTokenDistill(DistillMethod):
    """KL between the softmax of the class tokens (a projector maps widths when they differ)."""

    needs = ("tokens",)

    def __init__(self, *, student_dim: int, teacher_dim: int, **kwargs: Any) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)
        self.projector = nn.Linear(student_dim, teacher_dim) if student_dim != teacher_dim else nn.Identity()

    def forward(
        self, student_out: dict[str, Any], teacher_out: dict[str, Any], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return cls_token_loss(self.projector(student_out["tokens"][:, 0]), teacher_out["tokens"][:, 0])
