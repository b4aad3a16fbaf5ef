"""Golden values for the baseline losses (feature, class token, logits) and the method registry."""

from __future__ import annotations

import math

import pytest
import torch

from compress.losses import create_method, parse_methods
from compress.losses.cls_token import cls_token_loss
from compress.losses.feature import feature_loss
from compress.losses.logits import hard_kd_loss, mixed_logits_loss, soft_kd_loss
from tinymim.errors import ConfigError


def _softmax(row):
    z = sum(math.exp(r) for r in row)
    return [math.exp(r) / z for r in row]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def test_feature_loss_golden():
    # teacher token [1, 3] -> LayerNorm (no affine, eps 1e-5): mean 2, var 1 -> [-1, 1] * 1/sqrt(1 + 1e-5)
    t = torch.tensor([[[1.0, 3.0]]])
    s = torch.tensor([[[2.0, 1.0]]])
    w = 1 / math.sqrt(1 + 1e-5)
    diff = [abs(2.0 + w), abs(1.0 - w)]  # 2.99999 (>= beta 2: |x| - 1) and ~0 (< beta: 0.5 x^2 / 2)
    want = ((diff[0] - 1.0) + 0.5 * diff[1] ** 2 / 2.0) / 2
    assert feature_loss(s, t, beta=2.0).item() == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(1.0, abs=1e-4)


def test_feature_method_projects_to_teacher_width():
    m = create_method("feature", student_dim=8, teacher_dim=12)
    loss = m({"tokens": torch.randn(2, 5, 8)}, {"tokens": torch.randn(2, 5, 12)}, None)
    loss.backward()
    assert m.projector.weight.grad is not None and m.projector.weight.shape == (12, 8)


def test_cls_token_golden_and_projector():
    t, s = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    want = _kl(_softmax([0, 1, 2]), _softmax([1, 1, 0]))
    assert cls_token_loss(s, t).item() == pytest.approx(want, rel=1e-5)
    same = create_method("cls_token", student_dim=3, teacher_dim=3)
    assert isinstance(same.projector, torch.nn.Identity)
    tokens_t = torch.cat([t[:, None], torch.zeros(1, 4, 3)], 1)
    tokens_s = torch.cat([s[:, None], torch.ones(1, 4, 3)], 1)
    assert same({"tokens": tokens_s}, {"tokens": tokens_t}, None).item() == pytest.approx(want, rel=1e-5)
    assert create_method("cls_token", student_dim=4, teacher_dim=3).projector.weight.shape == (3, 4)


def test_soft_kd_has_t_squared_scaling():
    t, s = torch.tensor([[2.0, 0.0, -2.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    T = 2.0
    want = _kl(_softmax([1, 0, -1]), _softmax([0, 0.5, 0])) * T * T
    assert soft_kd_loss(s, t, T).item() == pytest.approx(want, rel=1e-5)


def test_hard_kd_and_alpha_mix():
    t = torch.tensor([[0.0, 5.0, 1.0]])  # teacher argmax = 1
    s = torch.tensor([[1.0, 2.0, 3.0]])
    ce = lambda row, y: -math.log(_softmax(row)[y])  # noqa: E731
    assert hard_kd_loss(s, t).item() == pytest.approx(ce([1, 2, 3], 1), rel=1e-5)
    y = torch.tensor([0])
    mixed = mixed_logits_loss(s, t, y, alpha=0.25, temperature=1.0, hard=True)
    assert mixed.item() == pytest.approx(0.75 * ce([1, 2, 3], 0) + 0.25 * ce([1, 2, 3], 1), rel=1e-5)
    hard = create_method("logits_hard", student_dim=1, teacher_dim=1, alpha=1.0)
    assert hard({"logits": s}, {"logits": t}, None).item() == pytest.approx(ce([1, 2, 3], 1), rel=1e-5)


def test_registry_lookup_and_combinations():
    assert parse_methods("relation") == (("relation", 1.0),)
    assert parse_methods("relation:1.0, logits:0.5") == (("relation", 1.0), ("logits", 0.5))
    with pytest.raises(ConfigError, match="valid choices: cls_token, feature, logits, logits_hard, relation"):
        parse_methods("relatoin")
    with pytest.raises(ConfigError, match="not a number"):
        parse_methods("relation:x")
    with pytest.raises(ConfigError, match="twice"):
        parse_methods("relation,relation:2")
