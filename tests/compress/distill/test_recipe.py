"""Recipe details of docs/METHOD.md sections 1 and 3: teacher frozen in eval, drop path, optimiser groups."""

from __future__ import annotations

import pytest
import torch
from timm.layers import DropPath

from compress.distill.schedule import build_optimizer, scaled_lr
from compress.distill.setup import build_distillation


def test_teacher_frozen_eval_and_student_drop_path(make_vit):
    teacher, student = make_vit(embed_dim=64, num_heads=4, drop_path_rate=0.3), make_vit(depth=3, embed_dim=48)
    d = build_distillation(teacher, student, (("relation", 1.0),), teacher_is_classifier=True, num_classes=10)
    d.module.train()
    d.teacher.train()  # asking for train mode keeps the teacher in eval: no dropout, no drop path
    assert not any(m.training for m in d.teacher.modules())
    assert not any(p.requires_grad for p in d.teacher.parameters())
    blocks = d.student.blocks
    for blk in blocks[:-1]:
        assert isinstance(blk.drop_path1, DropPath) and blk.drop_path1.drop_prob == pytest.approx(0.1)
        assert blk.drop_path2.drop_prob == pytest.approx(0.1)  # uniform, not a ramp
    assert isinstance(blocks[-1].drop_path1, torch.nn.Identity)  # none on the distilled block
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a = d.teacher(x, frozenset({"qkv"}))["qkv"][0]
        b = d.teacher(x, frozenset({"qkv"}))["qkv"][0]
    assert torch.equal(a, b)
    assert d.report["teacher_block"] == 2 and d.report["distilled_block_heads"] == 4


def test_optimizer_groups_and_lr_scaling(make_vit):
    d = build_distillation(
        make_vit(embed_dim=64, num_heads=4),
        make_vit(embed_dim=48),
        (("feature", 1.0),),
        teacher_is_classifier=True,
        num_classes=10,
    )
    opt = build_optimizer(d.module, lr=scaled_lr(1.5e-4, 4096))
    assert scaled_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)
    names = {id(p): n for n, p in d.module.named_parameters()}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    no_decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert all(g["betas"] == (0.9, 0.95) for g in opt.param_groups)
    assert "methods.feature.projector.weight" in decay and "student.blocks.0.attn.qkv.weight" in decay
    assert "student.blocks.0.attn.qkv.bias" in no_decay and "student.blocks.0.norm1.weight" in no_decay
    assert "student.head.weight" not in decay | no_decay  # frozen: no gradient, not optimised


def test_weighted_combination_sums_the_losses(make_vit):
    from compress.losses import parse_methods

    teacher = make_vit(embed_dim=64, num_heads=4).eval()
    d = build_distillation(
        teacher,
        make_vit(embed_dim=48),
        parse_methods("relation:1.0,logits:0.5"),
        teacher_is_classifier=True,
        num_classes=10,
    )
    assert d.freeze.frozen == ()  # logits use the whole student, so nothing may be frozen
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    out = d.loss_fn(d.module, ((x, x), y))
    assert set(out) == {"loss", "loss_relation", "loss_logits"}
    want = out["loss_relation"] + 0.5 * out["loss_logits"]
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    out["loss"].backward()
    assert all(p.grad is not None for p in d.student.parameters())
