"""Logit distillation for classifier teachers (Hinton KD and DeiT's hard variant), docs/METHOD.md section 2.

Soft (Hinton):  KD = KL( softmax(z_t / T) || softmax(z_s / T) ) * T^2   summed over classes, batch mean
Hard (DeiT):    KD = CE(z_s, argmax z_t)                                 batch mean
Mixed with the labels: L = (1 - alpha) * CE(z_s, y) + alpha * KD.
Works for any timm classifier teacher (ViT or CNN such as ResNet); the student needs the same classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compress.losses.registry import DistillMethod, register_method
from tinymim.errors import ConfigError


def soft_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD: KL(softmax(t/T) || softmax(s/T)) * T^2, summed over classes, mean over the batch."""
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1).detach()
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


def hard_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """DeiT hard distillation: cross-entropy against the teacher's argmax, batch mean."""
    return F.cross_entropy(student_logits.float(), teacher_logits.argmax(dim=-1).detach())


def mixed_logits_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    alpha: float,
    temperature: float,
    hard: bool,
) -> torch.Tensor:
    """(1 - alpha) * CE(s, y) + alpha * KD(s, t); labels may be None only when alpha == 1."""
    if hard:
        kd = hard_kd_loss(student_logits, teacher_logits)
    else:
        kd = soft_kd_loss(student_logits, teacher_logits, temperature)
    if alpha >= 1.0:
        return kd
    if labels is None:
        raise ConfigError("the logits method with alpha < 1 needs labelled data")
    return (1 - alpha) * F.cross_entropy(student_logits.float(), labels) + alpha * kd


@register_method("logits")
class LogitsDistill(DistillMethod):
    """Hinton KD (``hard=False``) or DeiT hard distillation (``hard=True``), mixed with labels by alpha."""

    needs = ("logits",)
    requires_transformer_teacher = False
    requires_classifier_teacher = True

    @classmethod
    def uses_labels(cls, options: dict[str, Any]) -> bool:
        """alpha < 1 mixes in the label loss; alpha = 1 learns from the teacher's scores alone."""
        return float(options.get("alpha", 0.5)) < 1.0

    def __init__(
        self,
        *,
        student_dim: int,
        teacher_dim: int,
        temperature: float = 4.0,
        alpha: float = 0.5,
        hard: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ConfigError(f"logits method needs temperature > 0 and 0 <= alpha <= 1, got {temperature}, {alpha}")
        self.temperature, self.alpha, self.hard = temperature, alpha, hard

    def forward(
        self, student_out: dict[str, Any], teacher_out: dict[str, Any], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return mixed_logits_loss(
            student_out["logits"],
            teacher_out["logits"],
            labels,
            alpha=self.alpha,
            temperature=self.temperature,
            hard=self.hard,
        )


@register_method("logits_hard")
class HardLogitsDistill(LogitsDistill):
    """DeiT's hard variant as its own name: ``--method logits_hard``."""

    def __init__(self, *, student_dim: int, teacher_dim: int, **kwargs: Any) -> None:
        kwargs["hard"] = True
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)
