"""Head alignment, target-block choice and freezing of parameters that receive no gradient.

Relations are (B, M, N, N), so student and teacher need the same head count M in the distilled blocks.
Following the paper, the student's last block is given the teacher's head count M_t at the same width
D_s (heads of width D_s / M_t). Head count does not change any weight shape (qkv is D -> 3D either
way), so fine-tuning loads the same weights with the student's normal head count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from compress.distill.errors import AlignmentError, DistillError
from compress.distill.qkv import transformer_blocks
from compress.models import set_block_heads

log = logging.getLogger(__name__)


def align_student_heads(student: nn.Module, teacher_heads: int) -> int:
    """Give the student's last block ``teacher_heads`` heads; returns the new head width D_s / M_t.

    Raises AlignmentError naming both numbers and the fix when the width is not divisible, or when
    the block has per-head q/k norms whose shape depends on the head width.
    """
    blocks = transformer_blocks(student)
    if blocks is None:
        raise AlignmentError(f"student {type(student).__name__} is not a timm VisionTransformer")
    last = blocks[-1]
    width = last.attn.qkv.out_features // 3
    if width % teacher_heads:
        divisors = [m for m in range(1, width + 1) if width % m == 0]
        raise AlignmentError(
            f"cannot align heads: the student's width {width} is not divisible by the teacher's {teacher_heads} "
            f"heads. Fix: pick a student width that is a multiple of {teacher_heads} (e.g. "
            f"{teacher_heads * max(1, round(width / teacher_heads))}), or a teacher whose head count divides "
            f"{width} (one of {divisors}), or use --method feature / cls_token which need no alignment"
        )
    if not isinstance(getattr(last.attn, "q_norm", nn.Identity()), nn.Identity):
        raise AlignmentError(
            "the student's last block uses per-head q/k norm (qk_norm); its head count cannot be "
            "changed without changing weight shapes. Build the student with qk_norm=False"
        )
    set_block_heads(last, teacher_heads)
    log.info("student last block: %d heads of width %d (teacher's head count)", teacher_heads, width // teacher_heads)
    return width // teacher_heads


def default_target_block(depth: int) -> int:
    """The teacher block to distil (0-based): the last one, or 3/4 depth for teachers deeper than 12 blocks.

    24 blocks -> block 18 in the paper's 1-based counting, i.e. index 17 (the 18th block's q, k, v).
    """
    return depth * 3 // 4 - 1 if depth > 12 else depth - 1


def resolve_target_block(depth: int, requested: int | None) -> int:
    """0-based teacher target block: ``requested`` (1-based, as in the paper; negative counts from the end)
    or the default rule. Raises DistillError when out of range."""
    if requested is None:
        return default_target_block(depth)
    if requested == 0 or not -depth <= requested <= depth:
        raise DistillError(
            f"teacher target block {requested} is out of range: the teacher has {depth} blocks; use 1..{depth} "
            f"(1-based) or -1..-{depth} (from the end), or leave it unset for the default "
            f"({default_target_block(depth) + 1})"
        )
    return requested - 1 if requested > 0 else depth + requested


@dataclass(frozen=True)
class FreezeReport:
    """Which student parameters were frozen because they get no gradient from the chosen methods."""

    frozen: tuple[str, ...]
    trainable: int
    frozen_count: int

    def summary(self) -> str:
        return (
            f"froze {len(self.frozen)} tensors ({self.frozen_count:,} params) that receive no gradient; "
            f"{self.trainable:,} params train"
        )


def freeze_unused(student: nn.Module, student_output: str) -> FreezeReport:
    """Freeze the parameters the student's distillation forward never uses.

    ``student_output``: "qkv" (relation only: the last block after its qkv, the final norm and the head
    are unused), "tokens" (feature / class token use the last block's output before the final norm: the final norm,
    fc_norm and head are unused) or "logits" (all used).
    Frozen parameters keep ``requires_grad=False`` so DDP needs no ``find_unused_parameters``.
    """
    blocks = transformer_blocks(student)
    unused_prefixes: list[str] = []
    if student_output in ("qkv", "tokens"):
        unused_prefixes += ["norm.", "head.", "fc_norm.", "head_drop.", "attn_pool."]
    if student_output == "qkv" and blocks is not None:
        last = len(blocks) - 1
        keep = (
            f"blocks.{last}.norm1.",
            f"blocks.{last}.attn.qkv.",
            f"blocks.{last}.attn.q_norm.",
            f"blocks.{last}.attn.k_norm.",
        )
        for name, _ in student.named_parameters():
            if name.startswith(f"blocks.{last}.") and not name.startswith(keep):
                unused_prefixes.append(name)
    frozen: list[str] = []
    frozen_count = trainable = 0
    for name, p in student.named_parameters():
        if any(name == pre or name.startswith(pre) for pre in unused_prefixes):
            p.requires_grad_(False)
            frozen.append(name)
            frozen_count += p.numel()
        elif p.requires_grad:
            trainable += p.numel()
    report = FreezeReport(tuple(frozen), trainable, frozen_count)
    log.info("%s: %s", report.summary(), ", ".join(frozen) if frozen else "none")
    return report
