"""The two-view distillation transform: one crop and flip shared by teacher and student.

docs/METHOD.md section 3: one RandomResizedCrop (scale 0.2-1.0, bicubic) + horizontal flip, sampled once per
image and applied to both views; only the student's view also gets ColorJitter 0.4 (brightness,
contrast, saturation). Each view is then resized to its model's input size with its model's interpolation
and normalised with its model's own mean/std, all read from the model's card (``tinymim.card.Preprocess``),
so teachers and students with different preprocessing are reconciled explicitly.
No masking.
"""

from __future__ import annotations

import random

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

from tinymim.card import Preprocess

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def finish_view(pre: Preprocess, img: Image.Image) -> torch.Tensor:
    """A PIL crop -> (C, size, size) tensor as ``pre`` (the network's card) says: its channels ("L"/"RGB"),
    its size and interpolation, its mean/std. ``crop_pct`` belongs to evaluation's center crop; the shared
    random crop takes its place here, as in timm's training transform."""
    img = img.convert("L" if pre.channels == 1 else "RGB")
    img = img.resize((pre.image_size, pre.image_size), _RESAMPLE[pre.interpolation])
    return F.normalize(F.to_tensor(img), pre.mean, pre.std)


class TwoViewTransform:
    """PIL image -> (teacher view, student view), each (C, H, W) for its own network."""

    def __init__(
        self,
        teacher: Preprocess,
        student: Preprocess,
        *,
        scale: tuple[float, float] = (0.2, 1.0),
        color_jitter: float = 0.4,
        hflip: float = 0.5,
    ) -> None:
        self.teacher, self.student = teacher, student
        self.scale, self.ratio, self.hflip = scale, (3 / 4, 4 / 3), hflip
        self.jitter = T.ColorJitter(color_jitter, color_jitter, color_jitter) if color_jitter > 0 else None

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        top, left, h, w = T.RandomResizedCrop.get_params(img, list(self.scale), list(self.ratio))
        crop = img.crop((left, top, left + w, top + h))
        if random.random() < self.hflip:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        student = crop if self.jitter is None else self.jitter(crop)
        return finish_view(self.teacher, crop), finish_view(self.student, student)

    def __repr__(self) -> str:
        return (
            f"TwoViewTransform(RandomResizedCrop(scale={self.scale}) + flip shared; student "
            f"ColorJitter; teacher {self.teacher}; student {self.student})"
        )
