"""What export starts from: the checkpoint (model + card + hash) and the evaluation / calibration images.

The gate's images are preprocessed twice on purpose: by ``serve.preprocess.Preprocessor`` for the
artifacts (exactly what the service does) and by compress's evaluation transform for the PyTorch
reference (exactly what training evaluated). Any drift between the two shows up as a gate failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.checkpoint import load_model, resolve_checkpoint
from compress.data import build_datasets, eval_transform
from export.errors import EvalDataError, SourceError
from serve.bundle import sha256_file
from serve.preprocess import Preprocessor
from tinymim.errors import TinymimError

log = logging.getLogger(__name__)


@dataclass
class Source:
    model: Any  # torch.nn.Module, eval mode, fp32, CPU
    card: Any  # tinymim.card.ModelCard
    weights: Path
    sha256: str


def load_source(path: str | Path) -> Source:
    """Load a run folder (best/, else last/), checkpoint folder or weights file with its model card."""
    try:
        weights = resolve_checkpoint(path)
        model, card = load_model(path)
    except TinymimError as err:
        raise SourceError(f"cannot export {path}: {err}") from None
    return Source(model=model.float().eval(), card=card, weights=weights, sha256=sha256_file(weights))


@dataclass
class EvalSet:
    images: list[Any]  # PIL images
    labels: np.ndarray  # (N,) int64
    calibration: list[Any]  # PIL images from the training split
    source: str


def _card_data(card: Any) -> tuple[str | None, float, int | None]:
    """(data, val_split, split seed) the model was trained with, from the card's data and training config.

    The split settings matter for image folders without train/ and val/: the same ``val_split`` and
    ``seed`` rebuild the same held-out images, so the gate never evaluates on training images.
    """
    data = card.data or {}
    config = (card.training or {}).get("config") or {}
    source = data.get("source") or data.get("data") or config.get("data")
    val_split = float(data.get("val_split", config.get("val_split", 0.1)))
    seed = data.get("seed", config.get("seed"))
    return source, val_split, (int(seed) if seed is not None else None)


def load_eval_set(card: Any, eval_data: str | None, *, eval_images: int, calib_images: int, seed: int = 0) -> EvalSet:
    """Validation images (class-balanced subset of ``eval_images``, or all) and training calibration images.

    ``eval_data`` defaults to the data recorded in the model card. Its classes must be the card's labels,
    in the same order, or the gate would compare the wrong things.
    """
    data, val_split, split_seed = _card_data(card)
    if split_seed is not None and not eval_data:
        seed = split_seed
    data = eval_data or data
    if not data:
        raise EvalDataError(
            "the model card records no training data, so there is no default evaluation set; pass --eval-data "
            "(builtin:fashion-mnist or an image folder with one sub-folder per class)"
        )
    try:
        bundle = build_datasets(
            data,
            val_split=val_split,
            in_chans=card.preprocess.channels,
            limit_train=max(1, calib_images),
            limit_val=eval_images,
            seed=seed,
        )
    except TinymimError as err:
        raise EvalDataError(f"evaluation data {data}: {err}") from None
    if tuple(bundle.classes) != tuple(card.labels):
        raise EvalDataError(
            f"evaluation data {data} has classes {list(bundle.classes)[:12]}, but the model was trained on "
            f"{list(card.labels)[:12]}; give data with the model's classes (same names, same order)"
        )
    images, labels = zip(*(bundle.val[i] for i in range(len(bundle.val))), strict=True)
    calibration = [bundle.train[i][0] for i in range(min(calib_images, len(bundle.train)))]
    log.info("evaluation set: %d images from %s; %d calibration images", len(images), data, len(calibration))
    return EvalSet(list(images), np.asarray(labels, dtype=np.int64), calibration, str(data))


def serve_inputs(card: Any, images: list[Any]) -> np.ndarray:
    """(N, C, H, W) float32 through serve/'s Preprocessor: what the service would feed the artifact."""
    pre = Preprocessor.from_card(card.preprocess)
    return pre.batch(images)


def torch_reference(source: Source, images: list[Any], batch: int = 64) -> np.ndarray:
    """(N, K) float32 PyTorch logits with compress's evaluation transform, fp32 on CPU."""
    import torch

    tf = eval_transform(source.card.preprocess)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.stack([tf(im) for im in images[i : i + batch]]).float()
            out.append(source.model(x).float().numpy())
    return np.concatenate(out)
