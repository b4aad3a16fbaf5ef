"""Fashion-MNIST shipped as package data (MIT licence in builtin/LICENSE-fashion-mnist.txt); no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from compress.data.idx import read_idx
from compress.errors import DataError

BUILTIN_DIR = Path(__file__).parent / "builtin"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Per-pixel statistics of the 60k training images in [0, 1] (computed by tests/compress/test_data.py).
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
BUILTINS = ("fashion-mnist",)


class ArrayImageDataset:
    """(PIL image, label) pairs from an in-memory uint8 array (N, H, W) or (N, H, W, 3)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mode: str = "L") -> None:
        self.images, self.labels = images, labels.astype(np.int64)
        self.mode = mode  # "L" or "RGB": the channels the model expects

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        img = Image.fromarray(self.images[i])
        return (img if img.mode == self.mode else img.convert(self.mode)), int(self.labels[i])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


def load_fashion_mnist(split: str, *, mode: str = "L") -> ArrayImageDataset:
    """The official split: "train" (60,000 images) or "test" (10,000), 28x28 grayscale, 10 classes."""
    if split not in _FILES:
        raise DataError(f"Fashion-MNIST split {split!r} does not exist; use 'train' or 'test'")
    img_file, lbl_file = (BUILTIN_DIR / f for f in _FILES[split])
    if not img_file.is_file():
        raise DataError(f"built-in Fashion-MNIST file {img_file} is missing; reinstall tinymim")
    images, labels = read_idx(img_file), read_idx(lbl_file)
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
    return ArrayImageDataset(np.ascontiguousarray(images), np.asarray(labels), mode)
