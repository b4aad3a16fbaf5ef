"""The frozen teacher: eval mode, no gradients, no drop path, stopped at its target block.

The teacher is kept outside the trained (DDP-wrapped) module: it has no trainable state, so each
process holds its own copy and only the student's gradients are synchronised.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compress.distill.forward import partial_forward
from compress.distill.qkv import transformer_blocks


class FrozenTeacher(nn.Module):
    """Wraps a teacher network; ``forward(x, needs)`` returns the outputs the methods need, without grad."""

    def __init__(self, model: nn.Module, target_block: int) -> None:
        super().__init__()
        self.model = model
        self.target_block = target_block
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    @property
    def num_blocks(self) -> int:
        blocks = transformer_blocks(self.model)
        return 0 if blocks is None else len(blocks)

    @property
    def num_heads(self) -> int:
        blocks = transformer_blocks(self.model)
        return 0 if blocks is None else int(blocks[self.target_block].attn.num_heads)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Always eval: dropout and drop path stay off whatever the caller asks."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, needs: frozenset[str]) -> dict[str, Any]:  # type: ignore[override]
        return partial_forward(self.model, x, self.target_block, needs)
