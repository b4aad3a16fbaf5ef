"""Recipes of ``tinymim train``: from-scratch without --init, fine-tune with it, scaled to the data, flags win;
the first log line names the recipe and its values; fit reports when validation stops improving."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from compress.checkpoint import load_model
from compress.data import eval_transform
from compress.distributed import DistInfo
from compress.models import create_model
from compress.recipe import training_transform
from compress.runner import FitSettings, fit
from compress.train_config import TrainConfig
from compress.train_recipes import (
    FINETUNE,
    FINETUNE_BASE_LR,
    RECIPE_KEYS,
    SCRATCH,
    SCRATCH_BASE_LR,
    DataFacts,
    augmentation,
    choose_recipe,
    crop_scale_min,
    warmup_epochs,
)
from tests.compress.conftest import run_tinymim
from tinymim.card import ModelCard, Preprocess
from tinymim.configio import build_config

FACTS = DataFacts(train_images=5000, classes=10, img_size=28, epochs=6, batch=64)


def test_no_init_is_from_scratch_and_init_is_fine_tune(tmp_path: Path) -> None:
    scratch = choose_recipe(build_config(TrainConfig, {}), FACTS)
    assert scratch.name == SCRATCH and set(scratch.chosen) == set(RECIPE_KEYS)
    assert scratch.values["base_lr"] == SCRATCH_BASE_LR and scratch.values["layer_decay"] == 1.0
    (tmp_path / "ckpt.safetensors").write_bytes(b"")
    tuned = choose_recipe(build_config(TrainConfig, {"init": str(tmp_path / "ckpt.safetensors")}), FACTS)
    assert tuned.name == FINETUNE and tuned.values["base_lr"] == FINETUNE_BASE_LR
    assert tuned.values["layer_decay"] == 0.65


def test_every_flag_wins_over_the_recipe() -> None:
    given = {"base_lr": 1e-3, "layer_decay": 0.8, "mixup": 0.2, "rand_augment": "none", "warmup_epochs": 2.0}
    recipe = choose_recipe(build_config(TrainConfig, given), FACTS)
    assert {k: recipe.values[k] for k in given} == given
    assert set(recipe.given) == set(given) and not set(recipe.chosen) & set(given)
    line = recipe.describe(1e-3 * 64 / 256)
    assert "layer_decay 0.8 (given)" in line and "mixup 0.2 (given)" in line and "rand_augment none (given)" in line
    assert "weight_decay 0.05," in line  # chosen by the recipe: no mark


def test_scaling_rules() -> None:
    # warm-up: 10% of the updates (5000 // 64 = 78 per epoch, 6 epochs -> 47 updates), at most 5 epochs
    assert warmup_epochs(FACTS) == pytest.approx(47 / 78)
    long = DataFacts(train_images=60000, classes=10, img_size=28, epochs=300, batch=64)
    assert warmup_epochs(long) == 5.0
    # the smallest crop keeps a 16 px side: (16/28)^2 at 28 px, DeiT's 0.08 from 57 px up
    assert crop_scale_min(28) == pytest.approx((16 / 28) ** 2, abs=1e-3)
    assert crop_scale_min(224) == 0.08 and crop_scale_min(16) == 1.0
    # lr by batch: base_lr is per 256 images, so the log's lr is base_lr x batch / 256
    big = DataFacts(train_images=5000, classes=10, img_size=28, epochs=6, batch=256)
    assert (
        choose_recipe(build_config(TrainConfig, {}), big)
        .describe(SCRATCH_BASE_LR)
        .startswith(
            "recipe from-scratch (no --init; 5000 images, 10 classes = 500 per class, 28 px, 6 epochs x 19 updates"
        )
    )


def test_augmentation_by_passes_over_the_data() -> None:
    # short runs (measured: 6-15 epochs at 28 px): nothing drawn at random, exactly what --no-augment gives
    assert augmentation(FACTS) == {
        "crop_scale_min": 1.0,
        "hflip": 0.0,
        "label_smoothing": 0.0,
        "rand_augment": "none",
        "random_erasing": 0.0,
        "mixup": 0.0,
        "cutmix": 0.0,
    }
    light = augmentation(DataFacts(train_images=1000, classes=10, img_size=28, epochs=60, batch=64))
    assert light["crop_scale_min"] == pytest.approx((16 / 28) ** 2, abs=1e-3) and light["hflip"] == 0.5
    assert light["label_smoothing"] == 0.1 and light["rand_augment"] == "none" and light["mixup"] == 0.0
    full = augmentation(DataFacts(train_images=60000, classes=10, img_size=224, epochs=300, batch=256))
    assert full["crop_scale_min"] == 0.08 and full["rand_augment"].startswith("rand-m9")
    assert (full["mixup"], full["cutmix"], full["random_erasing"]) == (0.8, 1.0, 0.25)


def test_level_zero_trains_on_the_eval_transform() -> None:
    pre = Preprocess((1, 28, 28), (0.5,), (0.5,), "bicubic", 1.0)
    img = Image.fromarray((torch.arange(28 * 28) % 251).reshape(28, 28).to(torch.uint8).numpy())
    resolved = build_config(TrainConfig, {**augmentation(FACTS), "rand_augment": "none"})
    torch.manual_seed(0)
    draws = [training_transform(resolved, pre)(img) for _ in range(4)]
    assert all(torch.equal(d, eval_transform(pre)(img)) for d in draws)
    moving = build_config(TrainConfig, {**augmentation(FACTS), "hflip": 1.0})
    assert torch.equal(training_transform(moving, pre)(img), eval_transform(pre)(img).flip(-1))


def test_no_augment_turns_every_augmentation_off_in_the_log() -> None:
    recipe = choose_recipe(build_config(TrainConfig, {"augment": False}), FACTS)
    line = recipe.describe(2e-3, augment=False)
    assert "augmentation off (--no-augment)" in line and "mixup" not in line and "crop_scale_min" not in line


def _tiny_args(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--limit-train",
        "256",
        "--limit-val",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--depth",
        "2",
        "--embed-dim",
        "32",
        "--num-heads",
        "2",
        "--no-progress",
        "--output",
        str(out),
        *extra,
    ]


def test_first_log_line_names_the_recipe_and_every_value(tmp_path: Path) -> None:
    proc = run_tinymim(*_tiny_args(tmp_path / "run", "--layer-decay", "0.9"))
    assert proc.returncode == 0, proc.stderr
    first = next(line for line in proc.stderr.splitlines() if " compress." in line)
    assert first == (tmp_path / "run" / "train.log").read_text().splitlines()[0].split(" ", 1)[1]
    assert "recipe from-scratch (no --init; 256 images, 10 classes = 26 per class, 28 px, 1 epochs x 8 updates" in first
    for key in RECIPE_KEYS:
        assert f" {key} " in first, key
    assert "layer_decay 0.9 (given)" in first and f"base_lr {SCRATCH_BASE_LR:.3g}," in first
    assert f"lr {SCRATCH_BASE_LR * 32 / 256:.3g}," in first
    _, card = load_model(tmp_path / "run")
    recipe = card.training["recipe"]
    assert (
        recipe["name"] == SCRATCH and recipe["values"]["layer_decay"] == 0.9 and "layer_decay" not in recipe["chosen"]
    )
    assert card.training["lr"] == pytest.approx(SCRATCH_BASE_LR * 32 / 256)


def test_fine_tune_recipe_with_init(tmp_path: Path) -> None:
    assert run_tinymim(*_tiny_args(tmp_path / "first", "--lr", "1e-3")).returncode == 0
    proc = run_tinymim(*_tiny_args(tmp_path / "ft", "--init", str(tmp_path / "first")))
    assert proc.returncode == 0, proc.stderr
    first = (tmp_path / "ft" / "train.log").read_text().splitlines()[0]
    assert "recipe fine-tune (--init;" in first and "layer_decay 0.65," in first
    assert f"base_lr {FINETUNE_BASE_LR:.3g}," in first


def test_fit_reports_when_validation_stops_improving(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model, kw = create_model(
        "vit_tiny", num_classes=3, img_size=16, in_chans=1, patch_size=4, depth=1, embed_dim=16, num_heads=2
    )
    card = ModelCard("vit_tiny_patch16_224", kw, Preprocess((1, 16, 16), (0.5,), (0.5,)), ("a", "b", "c"))
    scores = iter([50.0, 60.0, 59.0, 58.0, 61.0 - 5, 57.0])  # best at epoch 2 (index 1), never beaten

    class Images:
        def __len__(self) -> int:
            return 16

        def __getitem__(self, i: int):
            return torch.full((1, 16, 16), float(i % 3)), i % 3

    def loss_fn(m: nn.Module, batch) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.cross_entropy(m(batch[0]), batch[1])}

    caplog.set_level(logging.INFO, logger="compress")
    result = fit(
        model,
        loss_fn=loss_fn,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        train_set=Images(),
        run_dir=tmp_path / "run",
        settings=FitSettings(epochs=6, batch_size=8, lr=1e-3, progress=False, patience=3),
        dist=DistInfo(0, 1, 0, torch.device("cpu")),
        make_card=lambda val: card,
        config={},
        eval_fn=lambda m, d: {"top1": next(scores)},
    )
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["best_epoch"] for r in records] == [0, 1, 1, 1, 1, 1]
    assert [r["epochs_since_best"] for r in records] == [0, 0, 1, 2, 3, 4]
    assert all(r["best_val_top1"] == 60.0 for r in records[1:]) and result.best["epoch"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "validation top1 has not improved for 3 epochs (best 60 at epoch 2): best/ keeps that checkpoint; "
        "more epochs only pay if it improves again"
    ]
    assert "best validation top1 60 at epoch 2 of 6 (last epoch: 57)" in caplog.records[-1].getMessage()
