"""Image decoding and preprocessing from the model card's ``Preprocess``, with numpy and Pillow only (no torch).

Matches timm's evaluation transform (``timm.data.create_transform(is_training=False)``) exactly:
convert to "L"/"RGB" -> resize the shorter side to ``floor(size / crop_pct)`` (torchvision's rule for the
longer side: ``int(new_short * long / short)``) -> center crop (``int(round((h - th) / 2))``) -> [0, 1]
-> normalise -> CHW float32. compress/ tests pin this equivalence, so the gate and the service see the
same tensors the model was evaluated on in training.

The two halves are timed apart by the service (``decode`` and ``preprocess`` in serve/timing.py):
:meth:`Preprocessor.open` + :meth:`Preprocessor.load` turn bytes into pixels, :meth:`Preprocessor.transform`
turns pixels into the model's input. ``[0, 1] -> normalise`` is one table lookup per channel (the 256 possible
values of a uint8 pixel, computed once with the same float32 arithmetic), not three passes over the image.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass, field

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
    _lut: np.ndarray = field(init=False, repr=False, compare=False)  # (C, 256) float32: uint8 -> normalised

    def __post_init__(self) -> None:
        values = np.arange(256, dtype=np.float32) / 255.0
        mean = np.asarray(self.mean, np.float32)[:, None]
        std = np.asarray(self.std, np.float32)[:, None]
        object.__setattr__(self, "_lut", np.ascontiguousarray((values[None, :] - mean) / std))

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

    def open(self, data: bytes) -> Image.Image:
        """Read an image's header (format, size) without decoding its pixels; refuse unknown or oversized ones."""
        if not data:
            raise ImageError("empty image: the request carried no image bytes")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError("image refused as a decompression bomb (too many pixels)", status=413) from None
        except Image.UnidentifiedImageError:
            raise ImageError(
                "could not identify an image in the data; send JPEG, PNG, WebP or BMP bytes", status=415
            ) from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"corrupt or truncated image: {err}") from None
        w, h = img.size
        if w * h > self.max_pixels:
            raise ImageError(
                f"image is {w}x{h} = {w * h} pixels, above the limit of {self.max_pixels}; send a smaller image",
                status=413,
            )
        return img

    @staticmethod
    def load(img: Image.Image) -> Image.Image:
        """Decode the pixels of an image from :meth:`open`; refuse corrupt or truncated data."""
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"corrupt or truncated image: {err}") from None
        return img

    def decode(self, data: bytes) -> Image.Image:
        """Decode JPEG/PNG/WebP/BMP bytes; refuse corrupt, unsupported and oversized images."""
        return self.load(self.open(bytes(data)))

    def transform(self, img: Image.Image) -> np.ndarray:
        """Decoded image -> float32 array (C, H, W): convert, resize, center crop, normalise."""
        mode = "L" if self.channels == 1 else "RGB"
        if img.mode != mode:
            img = img.convert(mode)
        img = self._center_crop(self._resize(img))
        w, h = img.size
        px = np.frombuffer(img.tobytes(), np.uint8)  # row-major (H, W) or (H, W, C) pixels
        if self.channels == 1:
            return self._lut[0][px].reshape(1, h, w)
        px = px.reshape(h, w, self.channels)
        return np.stack([self._lut[c][px[:, :, c]] for c in range(self.channels)])  # one lookup per channel

    def timed(self, img: Image.Image) -> tuple[np.ndarray, float, float]:
        """Opened image -> (float32 (C, H, W), decode seconds, preprocess seconds)."""
        t0 = time.perf_counter()
        self.load(img)
        t1 = time.perf_counter()
        x = self.transform(img)
        return x, t1 - t0, time.perf_counter() - t1

    def __call__(self, image: Image.Image | bytes) -> np.ndarray:
        """One image (encoded bytes or a PIL image) -> float32 array (C, H, W)."""
        img = self.decode(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
        return self.transform(img)

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
        if (w, h) == (tw, th):
            return img
        if w < tw or h < th:  # torchvision pads with zeros; only reachable with crop_pct > 1
            raise ImageError(f"image {w}x{h} smaller than crop {tw}x{th}")
        top = int(round((h - th) / 2.0))
        left = int(round((w - tw) / 2.0))
        return img.crop((left, top, left + tw, top + th))
