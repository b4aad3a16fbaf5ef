"""Head alignment, target-block choice and the frozen-parameter report."""

from __future__ import annotations

import pytest
import torch

from compress.distill.alignment import align_student_heads, default_target_block, freeze_unused, resolve_target_block
from compress.distill.errors import AlignmentError, DistillError
from compress.distill.forward import partial_forward
from compress.distill.qkv import extract_qkv
from compress.losses.relation import relation_loss


@pytest.mark.parametrize("teacher_heads", [3, 6, 12, 16])
def test_student_last_block_takes_teacher_heads(teacher_heads, make_vit):
    teacher = make_vit(embed_dim=8 * teacher_heads, num_heads=teacher_heads).eval()
    student = make_vit(embed_dim=48, num_heads=3)
    head_dim = align_student_heads(student, teacher_heads)
    assert head_dim == 48 // teacher_heads
    assert student.blocks[0].attn.num_heads == 3  # only the last block changes
    x = torch.randn(2, 1, 16, 16)
    qs = extract_qkv(student, x, -1)
    qt = extract_qkv(teacher, x, -1)
    assert qs[0].shape == (2, teacher_heads, 17, 48 // teacher_heads)
    assert qt[0].shape == (2, teacher_heads, 17, 8)
    assert torch.isfinite(relation_loss(qs, qt))
    # the full block still runs with the new head count (weights unchanged)
    assert student(x).shape == (2, 10)


def test_unalignable_student_names_both_numbers(make_vit):
    student = make_vit(embed_dim=48, num_heads=3)
    with pytest.raises(AlignmentError, match=r"width 48 is not divisible by the teacher's 5 heads.*Fix"):
        align_student_heads(student, 5)


def test_target_block_rule():
    assert default_target_block(12) == 11 and default_target_block(2) == 1
    assert default_target_block(24) == 17  # the paper's block 18 (1-based)
    assert resolve_target_block(24, None) == 17
    assert resolve_target_block(24, 21) == 20 and resolve_target_block(24, -1) == 23
    for bad in (0, 25, -25):
        with pytest.raises(DistillError, match="out of range.*24 blocks"):
            resolve_target_block(24, bad)


def test_freeze_report_relation(make_vit):
    assert "fc_norm.weight" in freeze_unused(make_vit(depth=2, global_pool="avg"), "qkv").frozen
    student = make_vit(depth=2)
    report = freeze_unused(student, "qkv")
    frozen = set(report.frozen)
    assert {
        "blocks.1.attn.proj.weight",
        "blocks.1.mlp.fc1.weight",
        "blocks.1.norm2.weight",
        "norm.weight",
        "head.weight",
    } <= frozen
    assert not any(
        n.startswith(("blocks.0.", "blocks.1.norm1.", "blocks.1.attn.qkv.", "patch_embed", "pos_embed")) for n in frozen
    )
    # exactly the parameters without gradient are frozen
    out = partial_forward(student, torch.randn(2, 1, 16, 16), 1, {"qkv"})
    sum(t.square().mean() for t in out["qkv"]).backward()
    for name, p in student.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert report.frozen_count == sum(p.numel() for p in student.parameters() if not p.requires_grad)


def test_freeze_report_tokens_and_logits(make_vit):
    student = make_vit(depth=2)
    assert set(freeze_unused(student, "tokens").frozen) == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert freeze_unused(make_vit(depth=2), "logits").frozen == ()
