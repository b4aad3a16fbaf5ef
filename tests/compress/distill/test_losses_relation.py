"""Golden values for the relation loss (docs/METHOD.md section 1), computed by hand with ``math``."""

from __future__ import annotations

import math

import pytest
import torch

from compress.losses import create_method
from compress.losses.relation import relation_kl, relation_loss, relation_scores


def _softmax(row):
    z = sum(math.exp(r) for r in row)
    return [math.exp(r) / z for r in row]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def _rel(a, b, d):
    """rows of softmax(a b^T / sqrt(d)) for lists of N vectors of width d."""
    return [_softmax([sum(x * y for x, y in zip(ai, bj, strict=True)) / math.sqrt(d) for bj in b]) for ai in a]


# One image, one head, N = 2 tokens. Teacher heads of width 1, student heads of width 4 (own sqrt(d)).
QT, KT, VT = [[1.0], [2.0]], [[1.0], [-1.0]], [[0.0], [1.0]]
QS, KS, VS = (
    [[1.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0]],
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]],
    [[0.5, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]],
)


def _t(x):
    return torch.tensor(x, dtype=torch.float32)[None, None]  # (1, 1, N, d)


def test_golden_value_by_hand():
    # By hand: teacher Q-K scores [[1, -1], [2, -2]], V-V scores [[0, 0], [0, 1]] (d = 1);
    # student Q-K scores /2: [[0.5, 1.0], [1.0, 0.0]], V-V scores /2: [[0.625, 0.0], [0.0, 1.0]] (d = 4).
    want_qk = (_kl(_softmax([1, -1]), _softmax([0.5, 1.0])) + _kl(_softmax([2, -2]), _softmax([1.0, 0.0]))) / 2
    want_vv = (_kl(_softmax([0, 0]), _softmax([0.625, 0.0])) + _kl(_softmax([0, 1]), _softmax([0.0, 1.0]))) / 2
    assert math.isclose(want_qk + want_vv, 0.419174, abs_tol=1e-5)  # the number itself, pinned
    # and the generic hand formula agrees with the explicit rows above
    rel = lambda a, b, d: _rel(a, b, d)  # noqa: E731
    gen = (
        sum(_kl(p, q) for p, q in zip(rel(QT, KT, 1), rel(QS, KS, 4), strict=True)) / 2
        + sum(_kl(p, q) for p, q in zip(rel(VT, VT, 1), rel(VS, VS, 4), strict=True)) / 2
    )
    assert math.isclose(gen, want_qk + want_vv, rel_tol=1e-9)
    got = relation_loss((_t(QS), _t(KS), _t(VS)), (_t(QT), _t(KT), _t(VT)))
    assert got.item() == pytest.approx(want_qk + want_vv, abs=1e-6)


def test_mean_over_batch_heads_queries():
    torch.manual_seed(0)
    t = torch.randn(2, 3, 5, 5)
    s = torch.randn(2, 3, 5, 5)
    p, q = t.softmax(-1), s.softmax(-1)
    manual = (p * (p.log() - q.log())).sum(-1).mean()
    assert relation_kl(t, s).item() == pytest.approx(manual.item(), rel=1e-5)


def test_zero_when_equal_and_positive_otherwise():
    q, k, v = torch.randn(3, 2, 1, 4, 8).unbind(0)
    assert relation_loss((q, k, v), (q.clone(), k.clone(), v.clone())).item() == pytest.approx(0.0, abs=1e-6)
    assert relation_loss((q, k, v), (k, q, q)).item() > 1e-3


def test_student_log_softmax_is_finite_for_extreme_scores():
    t = torch.tensor([[[[0.0, 0.0]]]])
    s = torch.tensor([[[[0.0, -1e4]]]])  # softmax underflows to exactly 0; log(softmax) would be -inf
    loss = relation_kl(t, s)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.5 * 1e4, rel=1e-3)


def test_gradients_reach_only_the_student():
    qs, ks, vs = (torch.randn(2, 4, 5, 8, requires_grad=True) for _ in range(3))
    qt, kt, vt = (torch.randn(2, 4, 5, 16, requires_grad=True) for _ in range(3))
    method = create_method("relation", student_dim=32, teacher_dim=64)
    loss = method({"qkv": (qs, ks, vs)}, {"qkv": (qt, kt, vt)}, None)
    loss.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (qs, ks, vs))
    assert all(t.grad is None for t in (qt, kt, vt))


def test_scores_use_own_head_width():
    a = torch.ones(1, 1, 2, 9)
    assert torch.allclose(relation_scores(a, a), torch.full((1, 1, 2, 2), 9 / 3.0))
