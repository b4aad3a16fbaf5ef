"""The two-view transform shares crop and flip; only the student's view is colour-jittered."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from compress.distill.transforms import TwoViewTransform, finish_view
from tinymim.card import Preprocess


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
    arr[:, :20] = 0  # left half dark: a flip is visible
    return Image.fromarray(arr)


def test_same_crop_and_flip_without_jitter():
    spec = Preprocess((3, 24, 24), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    tf = TwoViewTransform(spec, spec, color_jitter=0.0)
    for seed in range(5):
        random.seed(seed)
        torch.manual_seed(seed)
        t, s = tf(_image())
        assert t.shape == s.shape == (3, 24, 24)
        assert torch.equal(t, s)


def test_own_size_channels_and_normalisation():
    teacher = Preprocess((3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    student = Preprocess((1, 16, 16), (0.0,), (1.0,))
    tf = TwoViewTransform(teacher, student, color_jitter=0.0)
    t, s = tf(_image())
    assert t.shape == (3, 32, 32) and s.shape == (1, 16, 16)
    assert t.min() >= -1.0 and t.max() <= 1.0 and s.min() >= 0.0 and s.max() <= 1.0
    # both views come from the same crop: downsampled teacher (grey) matches the student closely
    grey = (t * 0.5 + 0.5).mean(0, keepdim=True)[None]
    small = torch.nn.functional.interpolate(grey, size=16, mode="area")[0]
    assert (small - s).abs().mean() < 0.08


def test_jitter_changes_only_the_student():
    spec = Preprocess((3, 24, 24), (0.0,) * 3, (1.0,) * 3)
    torch.manual_seed(1)
    random.seed(1)
    t1, s1 = TwoViewTransform(spec, spec, color_jitter=0.4)(_image())
    torch.manual_seed(1)
    random.seed(1)
    t2, _ = TwoViewTransform(spec, spec, color_jitter=0.0)(_image())
    assert torch.equal(t1, t2)
    assert not torch.equal(t1, s1)


def test_each_view_uses_its_cards_interpolation():
    img = _image().crop((0, 0, 37, 37))
    bicubic = Preprocess((3, 16, 16), (0.0,) * 3, (1.0,) * 3, "bicubic")
    nearest = bicubic.replace(interpolation="nearest")
    want = np.asarray(img.resize((16, 16), Image.Resampling.NEAREST), dtype=np.float32) / 255
    assert torch.allclose(finish_view(nearest, img), torch.from_numpy(want).permute(2, 0, 1))
    assert not torch.equal(finish_view(nearest, img), finish_view(bicubic, img))
