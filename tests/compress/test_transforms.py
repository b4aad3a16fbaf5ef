"""Training-side eval transform == serving-side Preprocessor, and the training transform's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compress.data import build_mixup, eval_transform, train_transform
from serve.preprocess import Preprocessor
from tinymim.card import Preprocess


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("crop_pct,interpolation", [(1.0, "bicubic"), (0.875, "bilinear"), (0.9, "nearest")])
def test_eval_transform_matches_serving_preprocessor(channels: int, crop_pct: float, interpolation: str) -> None:
    mean = (0.2860,) if channels == 1 else (0.485, 0.456, 0.406)
    std = (0.3530,) if channels == 1 else (0.229, 0.224, 0.225)
    pre = Preprocess((channels, 24, 24), mean, std, interpolation=interpolation, crop_pct=crop_pct)
    tf = eval_transform(pre)
    serve = Preprocessor.from_card(pre)
    rng = np.random.default_rng(0)
    for w, h in [(24, 24), (28, 28), (40, 31), (17, 60), (300, 200), (25, 27)]:
        for mode in ("L", "RGB"):
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(arr, "RGB").convert(mode)
            ours = tf(img.convert("L" if channels == 1 else "RGB")).numpy()
            theirs = serve(img)
            assert ours.shape == theirs.shape == (channels, 24, 24)
            np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_train_transform_and_mixup_shapes() -> None:
    pre = Preprocess((1, 16, 16), (0.5,), (0.5,))
    tf = train_transform(pre, crop_scale=(0.3, 1.0))
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8), "L")
    outs = [tf(img) for _ in range(30)]  # RandAugment incl. posterize at high magnitudes must not raise
    assert all(o.shape == (1, 16, 16) for o in outs)
    assert not all(torch.equal(outs[0], o) for o in outs[1:])
    off = train_transform(pre, rand_augment=None, random_erasing=0.0, hflip=0.0, crop_scale=(1.0, 1.0))
    assert off(img).shape == (1, 16, 16)
    mix = build_mixup(0.8, 1.0, 0.1, num_classes=4)
    x, y = mix(torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1]))
    assert y.shape == (6, 4) and torch.allclose(y.sum(1), torch.ones(6))
    assert build_mixup(0.0, 0.0, 0.1, 4) is None
