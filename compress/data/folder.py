"""Image-folder datasets (torchvision/timm layout) that skip and count unreadable images.

Every file is decoded once when the dataset is built, so a corrupt image is found before training starts
(never mid-epoch); with ``strict=True`` the first one raises DataError instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from compress.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def top_level_images(root: Path) -> list[Path]:
    """Image files directly inside ``root`` (not in sub-folders), sorted."""
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_layout(root: Path) -> str:
    """How an image folder is organised, decided from names only (nothing is decoded):

    "train_val" (``root/train/<class>/`` + ``root/val/<class>/``), "class_folders" (``root/<class>/``),
    "flat" (images directly in ``root`` and no sub-folders: unlabelled) or "empty".
    """
    if not root.is_dir():
        raise DataError(f"--data {root} is not a folder; give an image folder or builtin:fashion-mnist")
    if (root / "train").is_dir():
        return "train_val"
    if any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        return "class_folders"
    return "flat" if top_level_images(root) else "empty"


def find_classes(root: Path) -> tuple[str, ...]:
    """Sorted names of the sub-folders of ``root`` (one per class)."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class>/<image> (see README)")
    return classes


def scan(root: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """(path, label) for every image file under ``root/<class>/`` (recursively), in sorted order."""
    samples = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        samples.extend((p, label) for p in files)
    return samples


def _readable(path: Path) -> str | None:
    """None if the image decodes fully, else the reason."""
    try:
        with Image.open(path) as img:
            img.load()
        return None
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for broken files
        return f"{type(err).__name__}: {err}"


def drop_unreadable(samples: list[tuple[Path, int]], *, strict: bool, what: str) -> tuple[list[tuple[Path, int]], int]:
    """Remove samples whose image does not decode; warn with the count and the first paths (or raise)."""
    good, bad = [], []
    for path, label in samples:
        reason = _readable(path)
        if reason is None:
            good.append((path, label))
        else:
            if strict:
                raise DataError(
                    f"unreadable image {path} ({reason}); remove it or drop --strict-data to skip such files"
                )
            bad.append(path)
    if bad:
        log.warning("skipped %d unreadable image(s) in %s, e.g. %s", len(bad), what, ", ".join(map(str, bad[:5])))
    return good, len(bad)


class ImageFileDataset:
    """(PIL image converted to ``mode``, label) pairs from a list of files."""

    def __init__(self, samples: list[tuple[Path, int]], mode: str) -> None:
        self.samples, self.mode = samples, mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        path, label = self.samples[i]
        with Image.open(path) as img:
            return img.convert(self.mode), label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def stratified_split(samples: list[tuple[Path, int]], val_split: float, seed: int = 0) -> tuple[list, list]:
    """Deterministic per-class split: ``round(n_c * val_split)`` images of class c go to validation."""
    rng = np.random.default_rng(seed)
    labels = np.array([label for _, label in samples])
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_split))
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val_idx.extend(idx[:n_val].tolist())
        train_idx.extend(idx[n_val:].tolist())
    return [samples[i] for i in sorted(train_idx)], [samples[i] for i in sorted(val_idx)]
