"""tinymim eval on a case computable by hand: a model that ranks classes by a fixed bias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compress.checkpoint import save_model
from compress.evaluation import per_class_and_confusion
from compress.models import create_model
from tests.compress.conftest import write_image
from tinymim.card import ModelCard, Preprocess
from tinymim_cli.main import main

VAL_COUNTS = {"c0": 1, "c1": 2, "c2": 3, "c3": 1, "c4": 2, "c5": 3}  # 12 validation images


def test_per_class_and_confusion_by_hand() -> None:
    matrix, acc = per_class_and_confusion([0, 1, 1, 2, 0], [0, 1, 2, 2, 2], 4)
    assert matrix == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert acc == [100.0, 100.0, pytest.approx(100 / 3), None]


def test_eval_command_numbers_by_hand(tmp_path: Path) -> None:
    for split, counts in (("train", {c: 1 for c in VAL_COUNTS}), ("val", VAL_COUNTS)):
        for c, n in counts.items():
            for i in range(n):
                write_image(tmp_path / "data" / split / c / f"{i}.png", (40 * i, 100, 30 * int(c[1])), size=24)
    # Labels in reverse order: model index 0 is "c5" (checks the name-based remapping of the data's labels).
    labels = tuple(reversed(VAL_COUNTS))
    model, kw = create_model(
        "vit_tiny", num_classes=6, img_size=16, in_chans=3, patch_size=4, depth=1, embed_dim=16, num_heads=2
    )
    with torch.no_grad():  # logits = bias: ranking c5 > c4 > c3 > c2 > c1 > c0 for every image
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([6.0, 5, 4, 3, 2, 1]))
    card = ModelCard(
        "vit_tiny_patch16_224", kw, Preprocess((3, 16, 16), (0.5,) * 3, (0.5,) * 3, crop_pct=0.875), labels
    )
    save_model(tmp_path / "ck", model, card)
    out = tmp_path / "out"
    assert main(["eval", str(tmp_path / "ck"), "--data", str(tmp_path / "data"), "--output", str(out)]) == 0
    res = json.loads((out / "eval.json").read_text())
    assert res["n"] == 12
    assert res["top1"] == pytest.approx(100 * 3 / 12)  # every prediction is c5, and 3 images are c5
    assert res["top5"] == pytest.approx(100 * 11 / 12)  # the top 5 miss only c0 (1 image)
    assert res["per_class_accuracy"] == {"c5": 100.0, "c4": 0.0, "c3": 0.0, "c2": 0.0, "c1": 0.0, "c0": 0.0}
    # rows: true class in model order (c5..c0); every prediction is column 0 (c5)
    assert res["confusion_matrix"] == [
        [3, 0, 0, 0, 0, 0],
        [2, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [3, 0, 0, 0, 0, 0],
        [2, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
    ]
    # CE with logits = bias for every image: -log softmax(bias)[label], averaged
    logp = torch.log_softmax(torch.tensor([6.0, 5, 4, 3, 2, 1]), 0)
    expected = -sum(VAL_COUNTS[name] * logp[i] for i, name in enumerate(labels)) / 12
    assert res["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_rejects_data_with_other_classes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(2):
        write_image(tmp_path / "data" / "cat" / f"{i}.png", (1, 2, 3))
        write_image(tmp_path / "data" / "dog" / f"{i}.png", (3, 2, 1))
    model, kw = create_model(
        "vit_tiny", num_classes=2, img_size=16, in_chans=3, patch_size=4, depth=1, embed_dim=16, num_heads=2
    )
    save_model(
        tmp_path / "ck",
        model,
        ModelCard("vit_tiny_patch16_224", kw, Preprocess((3, 16, 16), (0.5,) * 3, (0.5,) * 3), ("a", "b")),
    )
    assert main(["eval", str(tmp_path / "ck"), "--data", str(tmp_path / "data"), "--val-split", "0.5"]) == 1
    assert "are not the model's labels" in caplog.text
