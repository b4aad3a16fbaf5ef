"""Put a distillation together and check it before any training: teacher, student, methods, alignment.

Every impossible combination raises here (DistillError / ConfigError / CheckpointError), before the first
step: a relation or feature method with a non-transformer teacher, a target block out of range, a student
that cannot be aligned, token counts that differ, a logits method without a classifier teacher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.distill.alignment import FreezeReport, align_student_heads, freeze_unused, resolve_target_block
from compress.distill.errors import DistillError
from compress.distill.qkv import transformer_blocks
from compress.distill.student import DistillModule, set_uniform_drop_path
from compress.distill.teacher import FrozenTeacher
from compress.losses import create_method, method_class

log = logging.getLogger(__name__)


@dataclass
class Distillation:
    """The pieces ``fit`` needs plus a report of the choices made (target block, heads, frozen params)."""

    module: DistillModule
    teacher: FrozenTeacher
    freeze: FreezeReport
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def student(self) -> nn.Module:
        return self.module.student

    def loss_fn(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """``((teacher_view, student_view), labels)`` -> losses; ``model`` is the (DDP-wrapped) module."""
        (x_teacher, x_student), labels = batch
        if self.teacher_device() != x_teacher.device:
            self.teacher.to(x_teacher.device)
        teacher_out = self.teacher(x_teacher, self.module.needs)
        return model(x_student, teacher_out, labels)

    def teacher_device(self) -> torch.device:
        return next(self.teacher.parameters()).device


def _tokens(model: nn.Module) -> int:
    pe = model.patch_embed
    return int(pe.num_patches) + int(getattr(model, "num_prefix_tokens", 1))


def _width(model: nn.Module) -> int:
    return int(getattr(model, "embed_dim", getattr(model, "num_features", 0)))


def identity_init_untrained(student: nn.Module, freeze: FreezeReport) -> list[str]:
    """Zero the output layers (attention projection, MLP fc2) of the last block's frozen, untrained branches.

    Relation distillation trains only norm1 and qkv of the student's last block; its attention projection
    and MLP get no gradient. Zeroed outputs make both residual branches add nothing, so fine-tuning starts
    from the distilled features passed through unchanged instead of through random layers; the zeroed
    layers still get gradients (from the first fine-tuning step on) since their inputs are non-zero.
    Returns the zeroed parameter names (empty when the methods train the whole block).
    """
    blocks = transformer_blocks(student)
    if blocks is None:
        return []
    last = len(blocks) - 1
    targets = [f"blocks.{last}.attn.proj.", f"blocks.{last}.mlp.fc2."]
    zeroed = []
    with torch.no_grad():
        for name, p in student.named_parameters():
            if name in freeze.frozen and any(name.startswith(t) for t in targets):
                p.zero_()
                zeroed.append(name)
    return zeroed


def build_distillation(
    teacher: nn.Module,
    student: nn.Module,
    methods: tuple[tuple[str, float], ...],
    *,
    teacher_is_classifier: bool,
    num_classes: int,
    teacher_block: int | None = None,
    drop_path: float = 0.1,
    method_options: dict[str, dict[str, Any]] | None = None,
    last_block_init: str = "random",
) -> Distillation:
    """Check the combination, align heads, set drop path, freeze unused student parameters.

    ``teacher_block``: 1-based (negative from the end) or None for the default rule (last block; 3/4 depth
    for teachers deeper than 12 blocks). ``methods``: (name, weight) pairs from ``parse_methods``.
    ``last_block_init="identity"`` zeroes the output layers of the last block's untrained branches.
    """
    t_blocks, s_blocks = transformer_blocks(teacher), transformer_blocks(student)
    if s_blocks is None:
        raise DistillError(f"the student {type(student).__name__} is not a timm VisionTransformer")
    classes = [method_class(name) for name, _ in methods]
    for (name, _), cls in zip(methods, classes, strict=True):
        if cls.requires_transformer_teacher and t_blocks is None:
            raise DistillError(
                f"method {name!r} needs a transformer teacher with attention blocks, but the teacher is a "
                f"{type(teacher).__name__}; use --method logits for CNN teachers"
            )
        if cls.requires_classifier_teacher:
            t_classes = int(getattr(teacher, "num_classes", 0) or 0)
            if not teacher_is_classifier or t_classes == 0:
                raise DistillError(
                    f"method {name!r} needs a classifier teacher (a trained head); this teacher is "
                    "a backbone. Use relation / feature / cls_token, or a fine-tuned teacher"
                )
            if t_classes != num_classes:
                raise DistillError(
                    f"method {name!r}: the teacher predicts {t_classes} classes but the data has "
                    f"{num_classes}; logit distillation needs the same label set"
                )
    needs = {n for cls in classes for n in cls.needs}
    depth = len(t_blocks) if t_blocks is not None else 0
    target = resolve_target_block(depth, teacher_block) if t_blocks is not None else -1
    report: dict[str, Any] = {
        "methods": dict(methods),
        "teacher_blocks": depth,
        "teacher_block": target + 1 if t_blocks is not None else None,
    }
    if needs & {"qkv", "tokens"}:
        t_n, s_n = _tokens(teacher), _tokens(student)
        if "qkv" in needs or "feature" in dict(methods):
            if t_n != s_n:
                raise DistillError(
                    f"teacher and student see different token counts ({t_n} vs {s_n}); relation and feature "
                    "distillation compare token by token: give the student the teacher's image size / patch size "
                    "(--student-img-size, --student-patch-size)"
                )
    if "qkv" in needs:
        heads = int(t_blocks[target].attn.num_heads)  # type: ignore[index]
        report["distilled_block_heads"] = heads
        report["student_head_dim"] = align_student_heads(student, heads)
    set_uniform_drop_path(student, drop_path, skip_last=True)
    opts = method_options or {}
    built = {
        name: create_method(name, student_dim=_width(student), teacher_dim=_width(teacher), **opts.get(name, {}))
        for name, _ in methods
    }
    module = DistillModule(student, built, dict(methods))
    freeze = freeze_unused(student, module.student_output)
    if last_block_init == "identity":
        report["identity_init"] = identity_init_untrained(student, freeze)
    report.update(frozen=list(freeze.frozen), frozen_params=freeze.frozen_count, trainable_params=freeze.trainable)
    if t_blocks is not None:
        log.info(
            "teacher target block %d of %d%s",
            target + 1,
            depth,
            " (default rule: 3/4 depth)" if teacher_block is None and depth > 12 else "",
        )
    return Distillation(module, FrozenTeacher(teacher, target), freeze, report)
