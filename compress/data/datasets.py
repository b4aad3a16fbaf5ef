"""``build_datasets``: the one entry point from a ``--data`` string to train/val datasets of (PIL image, label).

Transforms are applied separately (``TransformDataset``), so distillation can wrap the same datasets with
its own two-view transform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compress.data.builtin import (
    BUILTINS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_fashion_mnist,
)
from compress.data.folder import (
    ImageFileDataset,
    drop_unreadable,
    find_classes,
    folder_layout,
    scan,
    stratified_split,
    top_level_images,
)
from compress.errors import DataError
from tinymim.card import adapt_channels

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNLABELLED = -1  # the label of every image of an unlabelled (flat) folder


@dataclass
class DataBundle:
    """Train/val datasets yielding (PIL image, int label), the class names and where the data came from.

    ``mean``/``std`` are the normalisation statistics suggested for this data with ``channels`` channels
    (Fashion-MNIST: its own; folders: ImageNet's); ``native_size`` the images' side when known (28 for
    Fashion-MNIST), else None. ``labelled`` is False for a flat folder of images (no class folders): its
    labels are all ``UNLABELLED``, ``classes`` is empty and ``val`` holds nothing.
    """

    train: Any
    val: Any
    classes: tuple[str, ...]
    source_info: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    native_size: int | None = None
    channels: int = 3  # channels the datasets' images are converted to (1: "L", 3: "RGB")
    labelled: bool = True

    @property
    def crop_pct(self) -> float:
        """The evaluation center-crop fraction that suits this data: 1.0 when the images all have the model's
        native size (Fashion-MNIST), else timm's 0.875 (resize the shorter side to size / 0.875, crop)."""
        return 1.0 if self.native_size else 0.875


class Subset:
    """The items of ``ds`` at ``indices`` (keeps ``targets``)."""

    def __init__(self, ds: Any, indices: list[int]) -> None:
        self.ds, self.indices = ds, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.ds[self.indices[i]]

    @property
    def targets(self) -> list[int]:
        t = self.ds.targets
        return [t[i] for i in self.indices]


class TransformDataset:
    """``(transform(image), label)`` for each ``(image, label)`` of ``ds``."""

    def __init__(self, ds: Any, transform: Callable[[Any], Any]) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, label = self.ds[i]
        return self.transform(img), label


def _limit(ds: Any, n: int | None, seed: int) -> Any:
    """A class-balanced deterministic subset of ``n`` items (all of them when n is None or >= len)."""
    if n is None or n >= len(ds):
        return ds
    targets = np.asarray(ds.targets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))
    # round-robin over classes in the permuted order -> balanced subset
    per_class = {c: order[targets[order] == c].tolist() for c in np.unique(targets)}
    picked: list[int] = []
    while len(picked) < n:
        for c in list(per_class):
            if per_class[c] and len(picked) < n:
                picked.append(per_class[c].pop(0))
    return Subset(ds, sorted(picked))


def is_labelled(data: str) -> bool:
    """Whether ``data`` carries labels, decided from folder names only (nothing is decoded).

    False only for a flat folder: images directly inside it and no class sub-folders.
    """
    if data.startswith("builtin:"):
        return True
    return folder_layout(Path(data).expanduser()) != "flat"


def build_datasets(
    data: str,
    *,
    val_split: float = 0.1,
    strict: bool = False,
    in_chans: int | None = None,
    limit_train: int | None = None,
    limit_val: int | None = None,
    seed: int = 0,
    allow_unlabelled: bool = False,
) -> DataBundle:
    """Datasets for ``data`` = ``builtin:fashion-mnist`` or an image-folder path.

    Folder layouts: ``PATH/train/<class>/*`` + ``PATH/val/<class>/*``, or ``PATH/<class>/*`` split with
    ``val_split`` (deterministic, stratified), or, only with ``allow_unlabelled`` (distillation), a flat
    ``PATH/*`` of images with no class folders (``labelled=False``, every image in ``train``). Images are
    converted to ``in_chans`` channels (1 -> "L", 3 -> "RGB"; default: 1 for Fashion-MNIST, 3 for folders).
    ``limit_*`` take class-balanced subsets (a random subset for unlabelled images).
    """
    if in_chans not in (None, 1, 3):
        raise DataError(f"in_chans must be 1 or 3, got {in_chans}")
    if data.startswith("builtin:"):
        bundle = _builtin(data.removeprefix("builtin:"), in_chans or 1)
    else:
        bundle = _folder(
            Path(data).expanduser(),
            val_split=val_split,
            strict=strict,
            in_chans=in_chans or 3,
            seed=seed,
            allow_unlabelled=allow_unlabelled,
        )
    bundle.train = _limit(bundle.train, limit_train, seed)
    bundle.val = _limit(bundle.val, limit_val, seed + 1)
    if len(bundle.train) == 0:
        raise DataError(f"the training set of {data} is empty; add images or lower --val-split")
    if bundle.labelled and len(bundle.val) == 0:
        raise DataError(f"the validation set of {data} is empty; add images to val/ or raise --val-split")
    bundle.source_info.update({"train_size": len(bundle.train), "val_size": len(bundle.val)})
    return bundle


def _builtin(name: str, in_chans: int) -> DataBundle:
    if name != "fashion-mnist":
        raise DataError(f"unknown built-in dataset '{name}'; available: {', '.join('builtin:' + b for b in BUILTINS)}")
    mode = "L" if in_chans == 1 else "RGB"
    mean, std = adapt_channels(FASHION_MNIST_MEAN, in_chans), adapt_channels(FASHION_MNIST_STD, in_chans)
    return DataBundle(
        train=load_fashion_mnist("train", mode=mode),
        val=load_fashion_mnist("test", mode=mode),
        classes=FASHION_MNIST_CLASSES,
        mean=mean,
        std=std,
        native_size=28,
        channels=in_chans,
        source_info={"source": "builtin:fashion-mnist", "split": "official train (60k) / test (10k)", "license": "MIT"},
    )


def _folder(
    root: Path, *, val_split: float, strict: bool, in_chans: int, seed: int, allow_unlabelled: bool
) -> DataBundle:
    layout_kind = folder_layout(root)
    if layout_kind == "flat":
        return _unlabelled_folder(root, strict=strict, in_chans=in_chans, allowed=allow_unlabelled)
    mode = "L" if in_chans == 1 else "RGB"
    loose = top_level_images(root)
    if loose:
        log.warning(
            "%d image(s) directly in %s are not in a class folder and are ignored (e.g. %s)",
            len(loose),
            root,
            loose[0].name,
        )
    if layout_kind == "train_val":
        classes = find_classes(root / "train")
        train = scan(root / "train", classes)
        if not (root / "val").is_dir():
            raise DataError(f"{root}/train exists but {root}/val does not; add val/<class>/ folders")
        val_classes = find_classes(root / "val")
        extra = set(val_classes) - set(classes)
        if extra:
            raise DataError(f"{root}/val has classes missing from train/: {sorted(extra)}")
        val = scan(root / "val", classes)
        layout = "train/ + val/"
    else:
        if not 0 < val_split < 1:
            raise DataError(f"{root} has no train/ and val/ folders, so --val-split must be in (0, 1), got {val_split}")
        classes = find_classes(root)
        train, val = stratified_split(scan(root, classes), val_split, seed)
        layout = f"class folders, val_split {val_split}"
    if not train and not val:
        raise DataError(f"no images found under {root} (extensions: .jpg .jpeg .png .webp .bmp)")
    train, bad_train = drop_unreadable(train, strict=strict, what=f"{root} (train)")
    val, bad_val = drop_unreadable(val, strict=strict, what=f"{root} (val)")
    mean, std = _folder_stats(in_chans)
    return DataBundle(
        train=ImageFileDataset(train, mode),
        val=ImageFileDataset(val, mode),
        classes=classes,
        mean=mean,
        std=std,
        channels=in_chans,
        source_info={"source": str(root), "layout": layout, "skipped_unreadable": bad_train + bad_val},
    )


def _folder_stats(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return adapt_channels(IMAGENET_MEAN, in_chans), adapt_channels(IMAGENET_STD, in_chans)


def _unlabelled_folder(root: Path, *, strict: bool, in_chans: int, allowed: bool) -> DataBundle:
    """A flat folder of images: every readable image goes to ``train`` with label UNLABELLED; no val."""
    files = top_level_images(root)
    if not allowed:
        raise DataError(
            f"{root} holds {len(files)} images but no class folders, so it has no labels; training a classifier "
            f"needs {root}/<class>/<image> (or train/<class>/ and val/<class>/). An unlabelled folder is for "
            f"distillation: tinymim distill --data {root} --method relation"
        )
    samples, bad = drop_unreadable([(p, UNLABELLED) for p in files], strict=strict, what=f"{root} (unlabelled)")
    mode = "L" if in_chans == 1 else "RGB"
    mean, std = _folder_stats(in_chans)
    return DataBundle(
        train=ImageFileDataset(samples, mode),
        val=ImageFileDataset([], mode),
        classes=(),
        mean=mean,
        std=std,
        channels=in_chans,
        labelled=False,
        source_info={"source": str(root), "layout": "flat (unlabelled)", "skipped_unreadable": bad},
    )
