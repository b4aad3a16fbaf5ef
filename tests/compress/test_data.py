"""Built-in Fashion-MNIST, the IDX reader, image folders (layouts, formats, corrupt files, empty folders)."""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compress.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    UNLABELLED,
    build_datasets,
    is_labelled,
    load_fashion_mnist,
)
from compress.data.builtin import BUILTIN_DIR
from compress.data.idx import read_idx
from compress.errors import DataError
from tests.compress.conftest import COLORS, write_image


def test_idx_reader_on_a_handmade_file(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 4) + arr.tobytes()
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "x.idx.gz"), arr)
    (tmp_path / "bad.idx").write_bytes(raw[:-1])
    with pytest.raises(DataError, match="header says"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "notidx").write_bytes(b"PK\x03\x04....")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "notidx")


def test_builtin_fashion_mnist_official_split_and_statistics() -> None:
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 28, 28) and np.bincount(test.labels).tolist() == [1000] * 10
    img, label = train[0]
    assert img.mode == "L" and img.size == (28, 28) and label == 9  # the first training image is an ankle boot
    x = train.images / 255.0
    assert x.mean() == pytest.approx(FASHION_MNIST_MEAN[0], abs=5e-5)
    assert x.std() == pytest.approx(FASHION_MNIST_STD[0], abs=5e-5)
    assert (BUILTIN_DIR / "LICENSE-fashion-mnist.txt").read_text().count("MIT") >= 1
    bundle = build_datasets("builtin:fashion-mnist", in_chans=3, limit_train=100, limit_val=50)
    assert bundle.classes == FASHION_MNIST_CLASSES and bundle.mean == FASHION_MNIST_MEAN * 3
    assert (len(bundle.train), len(bundle.val)) == (100, 50)
    assert np.bincount(bundle.train.targets).tolist() == [10] * 10  # class-balanced subset
    assert bundle.train[0][0].mode == "RGB"
    with pytest.raises(DataError, match="available: builtin:fashion-mnist"):
        build_datasets("builtin:mnist")


def test_single_folder_split_is_deterministic_and_stratified(color_folder: Path) -> None:
    a = build_datasets(str(color_folder), val_split=0.25, in_chans=3)
    b = build_datasets(str(color_folder), val_split=0.25, in_chans=3)
    assert a.classes == ("blue", "green", "red")
    assert (len(a.train), len(a.val)) == (18, 6)
    assert np.bincount(a.val.targets).tolist() == [2, 2, 2]
    assert [p for p, _ in a.val.samples] == [p for p, _ in b.val.samples]
    assert not {p for p, _ in a.val.samples} & {p for p, _ in a.train.samples}
    img, label = a.train[0]
    assert img.mode == "RGB" and img.size == (20, 20)
    gray = build_datasets(str(color_folder), val_split=0.25, in_chans=1)
    assert gray.train[0][0].mode == "L" and len(gray.mean) == 1
    # the grayscale BMP (index 2 of each class) is converted to RGB
    for ds in (a.train, a.val):
        for i, (p, _) in enumerate(ds.samples):
            if p.name == "2.bmp":
                assert Image.open(p).mode == "L" and ds[i][0].mode == "RGB"


def test_train_val_layout_and_corrupt_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "tv"
    for split, n in (("train", 4), ("val", 2)):
        for name, color in COLORS.items():
            for i in range(n):
                write_image(root / split / name / f"{i}.png", color, noise_seed=i)
    (root / "train" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = write_image(tmp_path / "tmp.jpg", (1, 2, 3), size=64)
    (root / "train" / "blue" / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    (root / "train" / "blue" / "notes.txt").write_text("not an image, ignored by extension")
    with caplog.at_level(logging.WARNING):
        bundle = build_datasets(str(root), in_chans=3)
    assert (len(bundle.train), len(bundle.val)) == (12, 6)
    assert bundle.source_info["skipped_unreadable"] == 2
    assert "skipped 2 unreadable image(s)" in caplog.text and "broken.png" in caplog.text
    with pytest.raises(DataError, match="unreadable image .*(broken.png|truncated.jpg).*strict-data"):
        build_datasets(str(root), strict=True)


def test_empty_and_missing_data_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        build_datasets(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        build_datasets(str(tmp_path / "empty"))
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(DataError, match="no images found"):
        build_datasets(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cat").mkdir()
    (tmp_path / "bad" / "cat" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="training set .* is empty"):
        build_datasets(str(tmp_path / "bad"))


def _flat_folder(root: Path, n: int = 9) -> Path:
    """PATH/*.png|jpg: ``n`` images of three colours, no class folders (unlabelled)."""
    colors = list(COLORS.values())
    for i in range(n):
        write_image(root / f"img{i}{'.png' if i % 2 else '.jpg'}", colors[i % 3], noise_seed=i)
    return root


def test_flat_folder_is_unlabelled_with_every_image_in_train(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _flat_folder(tmp_path / "pool")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "readme.txt").write_text("not an image, ignored by extension")
    assert not is_labelled(str(root)) and is_labelled("builtin:fashion-mnist")
    with caplog.at_level(logging.WARNING):
        bundle = build_datasets(str(root), allow_unlabelled=True, val_split=0.5, limit_val=3)
    assert bundle.labelled is False and bundle.classes == ()
    assert (len(bundle.train), len(bundle.val)) == (9, 0)
    assert {bundle.train[i][1] for i in range(9)} == {UNLABELLED}
    assert bundle.train[0][0].mode == "RGB" and bundle.source_info["skipped_unreadable"] == 1
    assert "skipped 1 unreadable image(s)" in caplog.text and "broken.png" in caplog.text
    assert len(build_datasets(str(root), allow_unlabelled=True, limit_train=4).train) == 4
    with pytest.raises(DataError, match="unreadable image .*broken.png.*strict-data"):
        build_datasets(str(root), allow_unlabelled=True, strict=True)


def test_flat_folder_is_refused_where_labels_are_needed(tmp_path: Path) -> None:
    root = _flat_folder(tmp_path / "pool")
    with pytest.raises(DataError, match=r"9 images but no class folders.*<class>/<image>.*tinymim distill --data"):
        build_datasets(str(root))


def test_loose_images_beside_class_folders_are_named_and_ignored(
    color_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_image(color_folder / "stray.png", (5, 5, 5))
    assert is_labelled(str(color_folder))
    with caplog.at_level(logging.WARNING):
        bundle = build_datasets(str(color_folder), in_chans=3)
    assert bundle.labelled and len(bundle.train) + len(bundle.val) == 24
    assert "1 image(s) directly in" in caplog.text and "stray.png" in caplog.text
