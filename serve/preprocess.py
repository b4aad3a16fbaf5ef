"""Image decoding and preprocessing from the model card's ``Preprocess``, with numpy and Pillow only (no torch).

Matches timm's evaluation transform (``timm.data.create_transform(is_training=False)``) exactly:
convert to "L"/"RGB" -> resize the shorter side to ``floor(size / crop_pct)`` (torchvision's rule for the
longer side: ``int(new_short * long / short)``) -> center crop (``int(round((h - th) / 2))``) -> [0, 1]
-> normalise -> CHW float32. compress/ tests pin this equivalence, so the gate and the service see the
same tensors the model was evaluated on in training.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from serve.errors import ImageError
from tinymim.card import Preprocess

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
DEFAULT_MAX_PIXELS = 40_000_000  # decompression-bomb guard: ~40 MP is far above any camera upload


@dataclass(frozen=True)
class Preprocessor:
    """Turns encoded images (or PIL images) into the model's float32 CHW input."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_card(cls, pre: Preprocess, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessor:
        """From the model card's ``Preprocess`` (a bundle's ``preprocess``): the one description of the input."""
        c, h, w = pre.input_size
        if h != w:
            raise ValueError(f"only square inputs are supported, got {h}x{w}")
        return cls(
            channels=c,
            size=h,
            mean=tuple(pre.mean),
            std=tuple(pre.std),
            interpolation=pre.interpolation,
            crop_pct=pre.crop_pct,
            max_pixels=max_pixels,
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def decode(self, data: bytes) -> Image.Image:
        """Decode JPEG/PNG/WebP/BMP bytes; refuse corrupt, unsupported and oversized images."""
        if not data:
            raise ImageError("empty image: the request carried no image bytes")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                w, h = img.size
                if w * h > self.max_pixels:
                    raise ImageError(
                        f"image is {w}x{h} = {w * h} pixels, above the limit of {self.max_pixels}; "
                        "send a smaller image",
                        status=413,
                    )
                img.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("image refused as a decompression bomb (too many pixels)", status=413) from None
        except Image.UnidentifiedImageError:
            raise ImageError(
                "could not identify an image in the data; send JPEG, PNG, WebP or BMP bytes", status=415
            ) from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"corrupt or truncated image: {err}") from None
        return img

    def __call__(self, image: Image.Image | bytes) -> np.ndarray:
        """One image -> float32 array (C, H, W)."""
        img = self.decode(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
        if isinstance(img, (bytearray, memoryview)):
            img = self.decode(bytes(img))
        img = img.convert("L" if self.channels == 1 else "RGB")
        img = self._resize(img)
        img = self._center_crop(img)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[:, :, None]
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def batch(self, images: list[Image.Image | bytes]) -> np.ndarray:
        return np.stack([self(im) for im in images]).astype(np.float32, copy=False)

    def _resize(self, img: Image.Image) -> Image.Image:
        target = math.floor(self.size / self.crop_pct)
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        if short == target:
            return img
        new_short, new_long = target, int(target * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        return img.resize((new_w, new_h), _RESAMPLE[self.interpolation])

    def _center_crop(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        th = tw = self.size
        if w < tw or h < th:  # torchvision pads with zeros; only reachable with crop_pct > 1
            raise ImageError(f"image {w}x{h} smaller than crop {tw}x{th}")
        top = int(round((h - th) / 2.0))
        left = int(round((w - tw) / 2.0))
        return img.crop((left, top, left + tw, top + th))
