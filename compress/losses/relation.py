"""TinyMIM relation distillation (docs/METHOD.md section 1).

For one block with M heads of width d (each network its own d):
    R_qk = softmax(q k^T / sqrt(d))        R_vv = softmax(v v^T / sqrt(d))       (softmax over keys)
    L = KL(R_qk^t || R_qk^s) + KL(R_vv^t || R_vv^s)
    KL(P || Q) = sum_keys P (log P - log Q), averaged over batch x heads x query rows (CLS included).
The student's log-probabilities come from log_softmax (never log of a softmax, which can give -inf).
Relations are computed here from q, k, v because timm's fused attention never materialises them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compress.losses.registry import DistillMethod, register_method


def relation_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Scaled scores a b^T / sqrt(d): (B, M, N, d) x (B, M, N, d) -> (B, M, N, N), in float32."""
    a, b = a.float(), b.float()
    return torch.matmul(a, b.transpose(-2, -1)) * a.shape[-1] ** -0.5


def relation_kl(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) over the last axis; mean over all other axes.

    Both (B, M, N, N) scaled scores (pre-softmax). Returns a scalar.
    """
    log_t = F.log_softmax(teacher_scores.float(), dim=-1)
    log_s = F.log_softmax(student_scores.float(), dim=-1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(-1)  # (B, M, N)
    return kl.mean()


def relation_loss(student_qkv: tuple[torch.Tensor, ...], teacher_qkv: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """L_qk + L_vv for student and teacher (q, k, v), each (B, M, N, d); teacher side without grad."""
    qs, ks, vs = student_qkv
    with torch.no_grad():
        qt, kt, vt = teacher_qkv
        t_qk, t_vv = relation_scores(qt, kt), relation_scores(vt, vt)
    return relation_kl(t_qk, relation_scores(qs, ks)) + relation_kl(t_vv, relation_scores(vs, vs))


@register_method("relation")
class RelationDistill(DistillMethod):
    """Q-K and V-V relations of the teacher's target block vs the student's last block (no parameters)."""

    needs = ("qkv",)

    def __init__(self, *, student_dim: int, teacher_dim: int, **kwargs: Any) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)

    def forward(
        self, student_out: dict[str, Any], teacher_out: dict[str, Any], labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return relation_loss(student_out["qkv"], teacher_out["qkv"])
