"""The trained module during distillation: the student plus the methods' own parameters (projectors).

``DistillModule.forward(x, teacher_out, labels)`` returns a dict of losses with "loss" the weighted total,
so everything that has gradients runs inside one forward (what DDP wraps).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import DropPath
from torch import nn

from compress.distill.forward import partial_forward
from compress.distill.qkv import transformer_blocks
from compress.losses import DistillMethod, deepest_output


def set_uniform_drop_path(student: nn.Module, rate: float, *, skip_last: bool = True) -> None:
    """Drop path ``rate`` on every block (uniform, not a ramp); none on the last (distilled) block."""
    blocks = transformer_blocks(student)
    if blocks is None:
        return
    for i, blk in enumerate(blocks):
        r = 0.0 if (skip_last and i == len(blocks) - 1) else rate
        for name in ("drop_path1", "drop_path2"):
            if hasattr(blk, name):
                setattr(blk, name, DropPath(r) if r > 0 else nn.Identity())


class DistillModule(nn.Module):
    """Student + weighted methods. ``student`` is what gets saved; ``methods`` hold projectors."""

    def __init__(self, student: nn.Module, methods: dict[str, DistillMethod], weights: dict[str, float]) -> None:
        super().__init__()
        self.student = student
        self.methods = nn.ModuleDict(methods)
        self.weights = dict(weights)
        self.needs = frozenset(n for m in methods.values() for n in m.needs)
        blocks = transformer_blocks(student)
        self.index = -1 if blocks is None else len(blocks) - 1

    @property
    def student_output(self) -> str:
        """The deepest output the student must produce (decides which parameters are frozen)."""
        return deepest_output(set(self.needs)) or "logits"

    def forward(
        self,
        x: torch.Tensor,
        teacher_out: dict[str, Any],  # type: ignore[override]
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = partial_forward(self.student, x, self.index, self.needs)
        losses = {name: m(out, teacher_out, labels) for name, m in self.methods.items()}
        total = sum(self.weights[name] * loss for name, loss in losses.items())
        return {"loss": total, **{f"loss_{name}": loss.detach() for name, loss in losses.items()}}
