"""tinymim train end to end on tiny models: it learns, writes the run folder, and fine-tunes from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from compress.checkpoint import load_model, save_model
from compress.data import FASHION_MNIST_CLASSES
from compress.models import create_model
from compress.recipe import train_classifier
from compress.train_config import TrainConfig
from tinymim.card import ModelCard, Preprocess
from tinymim.configio import build_config, config_to_dict

TINY = {"depth": 2, "embed_dim": 48, "num_heads": 2, "progress": False}


def test_tiny_run_learns_and_fills_the_run_folder(tmp_path: Path) -> None:
    cfg = build_config(
        TrainConfig,
        {
            "output": str(tmp_path / "run"),
            "limit_train": 1024,
            "limit_val": 200,
            "epochs": 4,
            "batch_size": 32,
            "lr": 2e-3,
            "augment": False,
            "warmup_epochs": 0.3,
            **TINY,
        },
    )
    run = train_classifier(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    best = max(r["val_top1"] for r in records)
    assert best > 45.0, f"chance is 10%, got {best}"  # 1024 Fashion-MNIST images, 4 epochs
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, card = load_model(run)
    # config.yaml and the card hold what was asked (None: the recipe's); the card also holds what the recipe chose
    assert yaml.safe_load((run / "config.yaml").read_text()) == config_to_dict(cfg)
    recipe = card.training["recipe"]
    assert recipe["name"] == "from-scratch" and recipe["values"]["warmup_epochs"] == 0.3
    assert "warmup_epochs" not in recipe["chosen"] and "weight_decay" in recipe["chosen"]
    assert card.labels == FASHION_MNIST_CLASSES and card.task == "classifier"
    assert card.preprocess.input_size == (1, 28, 28) and card.preprocess.mean == (0.2860,)
    assert card.arch_kwargs["patch_size"] == 7 and card.arch_kwargs["global_pool"] == "avg"
    assert card.metrics["top1"] == best and card.data["source"] == "builtin:fashion-mnist"
    assert card.training["config"] == config_to_dict(cfg)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_finetune_from_a_distilled_backbone_restores_heads(tmp_path: Path) -> None:
    backbone, kw = create_model(
        "vit_tiny", num_classes=0, img_size=16, in_chans=1, patch_size=4, depth=2, embed_dim=48, num_heads=2
    )
    with torch.no_grad():  # distinctive weights to recognise after loading
        backbone.blocks[0].mlp.fc1.weight.fill_(0.0123)
    card = ModelCard(
        "vit_tiny_patch16_224",
        kw,
        Preprocess((1, 16, 16), (0.5,), (0.5,)),
        (),
        task="backbone",
        distilled_block_heads=4,
    )
    save_model(tmp_path / "student", backbone, card)
    cfg = build_config(
        TrainConfig,
        {
            "output": str(tmp_path / "ft"),
            "init": str(tmp_path / "student"),
            "limit_train": 64,
            "limit_val": 20,
            "epochs": 1,
            "batch_size": 16,
            "lr": 1e-9,
            "augment": False,
            "progress": False,
            "img_size": 16,
        },
    )
    run = train_classifier(cfg)
    model, ft_card = load_model(run)
    assert ft_card.task == "classifier" and ft_card.distilled_block_heads is None
    assert [b.attn.num_heads for b in model.blocks] == [2, 2]
    assert ft_card.arch_kwargs["depth"] == 2 and ft_card.num_classes == 10
    assert ft_card.training["parents"] == [str(tmp_path / "student")]
    assert torch.allclose(
        model.blocks[0].mlp.fc1.weight, torch.full_like(model.blocks[0].mlp.fc1.weight, 0.0123), atol=1e-6
    )


@pytest.mark.gpu
def test_short_mixed_precision_run_on_gpu(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    cfg = build_config(
        TrainConfig,
        {
            "output": str(tmp_path / "gpu"),
            "limit_train": 256,
            "limit_val": 64,
            "epochs": 1,
            "batch_size": 32,
            "amp": "auto",
            **TINY,
        },
    )
    run = train_classifier(cfg)
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert record["step"] == 8 and record["val_n"] == 64
