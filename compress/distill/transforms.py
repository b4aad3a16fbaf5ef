"""The two-view distillation transform: one crop and flip shared by teacher and student.

METHOD.md section 3: one RandomResizedCrop (scale 0.2-1.0, bicubic) + horizontal flip, sampled once per
image and applied to both views; only the student's view also gets ColorJitter 0.4 (brightness,
contrast, saturation). Each view is then resized to its model's input size and normalised with its
model's own mean/std, so teachers and students with different preprocessing are reconciled explicitly.
No masking.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F


@dataclass(frozen=True)
class ViewSpec:
    """What one network expects: channels (1 -> "L", 3 -> "RGB"), square size, mean and std."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_preprocess(cls, pre: object) -> ViewSpec:
        """From a ``tinymim.card.Preprocess``."""
        c, h, _ = pre.input_size  # type: ignore[attr-defined]
        return cls(int(c), int(h), tuple(pre.mean), tuple(pre.std))  # type: ignore[attr-defined]

    def finish(self, img: Image.Image) -> torch.Tensor:
        """PIL crop -> (C, size, size) normalised float tensor."""
        img = img.convert("L" if self.channels == 1 else "RGB")
        img = img.resize((self.size, self.size), Image.BICUBIC)
        return F.normalize(F.to_tensor(img), self.mean, self.std)


class TwoViewTransform:
    """PIL image -> (teacher view, student view), each (C, H, W) for its own network."""

    def __init__(
        self,
        teacher: ViewSpec,
        student: ViewSpec,
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
        return self.teacher.finish(crop), self.student.finish(student)

    def __repr__(self) -> str:
        return (
            f"TwoViewTransform(RandomResizedCrop(scale={self.scale}, bicubic) + flip shared; student "
            f"ColorJitter; teacher {self.teacher}; student {self.student})"
        )
