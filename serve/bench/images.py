"""The images ``tinymim bench`` sends: a folder's JPEG/PNG/WebP/BMP files, or synthetic JPEGs of the model's size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tinymim.errors import ConfigError

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def load_images(folder: str | None, size: int, *, count: int = 8, limit: int = 256) -> list[bytes]:
    """Encoded images from ``folder`` (first ``limit``, sorted), or ``count`` synthetic JPEGs of ``size`` px."""
    if folder:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)[:limit]
        if not files:
            raise ConfigError(f"--images {folder}: no .jpg/.jpeg/.png/.webp/.bmp files found")
        return [p.read_bytes() for p in files]
    from PIL import Image

    out = []
    for i in range(count):
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:size, 0:size] / size
        rgb = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy))], -1)
        arr = ((rgb + 1) * 110 + rng.integers(0, 30, (size, size, 3))).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out
