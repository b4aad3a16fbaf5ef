"""Distillation from unlabelled image folders and from headless (MAE/DINO-style) teachers, and every refusal."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from compress.checkpoint import load_model, read_state_dict
from compress.data import FASHION_MNIST_CLASSES
from compress.distill.errors import DistillError
from compress.distill.run import run_distill
from compress.distill.teacher_loading import load_teacher
from compress.errors import DataError
from compress.recipe import train_classifier as train
from compress.train_config import TrainConfig
from tests.compress.conftest import COLORS, TINY_ARCH, run_tinymim, write_image
from tinymim.configio import build_config

# A headless teacher described by a timm name plus overrides: 2 blocks, 64 wide, 4 heads, 16 px / patch 4.
HEADLESS = dict(depth=2, embed_dim=64, num_heads=4, patch_size=4)
TEACHER_NORM = dict(teacher_mean=(0.3,), teacher_std=(0.35,), teacher_img_size=16)


def _no_training(cfg) -> None:
    assert not (Path(cfg.output) / "metrics.jsonl").exists()


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A flat folder of 40 images (no class folders) plus one corrupt file and one non-image."""
    root = tmp_path / "pool"
    colors = list(COLORS.values())
    for i in range(40):
        write_image(root / f"{i:03d}{'.png' if i % 2 else '.jpg'}", colors[i % 3], size=20, noise_seed=i)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "notes.txt").write_text("ignored")
    return root


def _headless_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "vit_small_patch16_224", pretrained=False, num_classes=0, img_size=16, in_chans=1, **HEADLESS
    )


@pytest.fixture
def headless_weights(tmp_path: Path) -> Path:
    """A card-less .safetensors of a timm ViT saved with num_classes=0 (no head.* keys)."""
    sd = {k: v.contiguous() for k, v in _headless_vit().state_dict().items()}
    assert not any(k.startswith("head") for k in sd)
    path = tmp_path / "encoder.safetensors"
    save_file(sd, str(path))
    return path


def _headless_cfg(tiny_distill, weights: Path, **kw):
    overrides = {f"teacher_{k}": v for k, v in HEADLESS.items()}
    return tiny_distill(teacher="vit_small", teacher_weights=str(weights), **TEACHER_NORM, **overrides, **kw)


# ------------------------------------------------------------------------------------------ unlabelled folder


def test_relation_on_an_unlabelled_folder_then_finetune(tiny_distill, pool, color_folder, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        run = run_distill(tiny_distill(data=str(pool), limit_train=None, batch_size=8, epochs=1))
    assert "skipped 1 unreadable image(s)" in caplog.text
    model, card = load_model(run)
    assert card.task == "backbone" and card.labels == () and model.num_classes == 0
    assert card.data["layout"] == "flat (unlabelled)" and card.data["train_size"] == 40
    assert card.data["skipped_unreadable"] == 1
    assert not any(k.startswith("head.") for k in read_state_dict(run / "last" / "model.safetensors"))
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["train_loss_relation"] > 0 and "val_top1" not in records[0]
    # the headless student fine-tunes on a labelled folder: a fresh 3-class head on the distilled body
    ft = train(
        build_config(
            TrainConfig,
            dict(
                data=str(color_folder),
                init=str(run),
                epochs=1,
                batch_size=8,
                augment=False,
                device="cpu",
                progress=False,
                amp="off",
                output=str(tmp_path / "ft"),
            ),
        )
    )
    ft_model, ft_card = load_model(ft)
    assert ft_card.labels == tuple(sorted(COLORS)) and ft_model.num_classes == 3
    assert ft_card.training["parents"] == [str(run)] and ft_card.arch_kwargs["in_chans"] == 1


def test_soft_labels_on_an_unlabelled_folder_take_the_teachers_classes(tiny_distill, pool):
    run = run_distill(tiny_distill(data=str(pool), method="logits", alpha=1.0, limit_train=None, batch_size=8))
    model, card = load_model(run)
    assert card.task == "classifier" and card.labels == FASHION_MNIST_CLASSES and model.num_classes == 10
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["train_loss_logits"] > 0 and "val_top1" not in records[0]
    assert not (run / "best").exists()  # nothing to validate on: last/ is the result


@pytest.mark.parametrize("method", ["logits", "logits_hard", "relation:1,logits:0.5"])
def test_methods_that_read_labels_refuse_an_unlabelled_folder(tiny_distill, pool, method):
    cfg = tiny_distill(data=str(pool), method=method, alpha=0.5)
    with pytest.raises(DistillError, match=r"alpha 0.5 mixes in the label loss.*unlabelled folder.*--alpha 1"):
        run_distill(cfg)
    _no_training(cfg)


def test_soft_labels_on_an_unlabelled_folder_need_the_teachers_class_names(tiny_distill, pool, tmp_path):
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_small_patch16_224", pretrained=False, num_classes=10, img_size=16, in_chans=1, **HEADLESS
    )
    weights = tmp_path / "classifier.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(weights))
    cfg = _headless_cfg(tiny_distill, weights, data=str(pool), method="logits", alpha=1.0)
    with pytest.raises(DistillError, match="teacher has no class names"):
        run_distill(cfg)
    _no_training(cfg)


def test_strict_data_makes_a_corrupt_unlabelled_image_an_error(tiny_distill, pool):
    cfg = tiny_distill(data=str(pool), strict_data=True)
    with pytest.raises(DataError, match=r"unreadable image .*broken.png"):
        run_distill(cfg)
    _no_training(cfg)


def test_train_refuses_an_unlabelled_folder(pool, tmp_path):
    out = tmp_path / "run"
    proc = run_tinymim("train", "--data", str(pool), *TINY_ARCH, "--epochs", "1", "--output", str(out))
    assert proc.returncode != 0
    assert "no class folders" in proc.stderr and "tinymim distill --data" in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------ headless teacher


def test_headless_weights_load_as_a_backbone_teacher(headless_weights):
    t = load_teacher(
        "vit_small",
        weights=str(headless_weights),
        mean=(0.3,),
        std=(0.35,),
        img_size=16,
        arch_overrides=HEADLESS,
    )
    assert not t.is_classifier and t.labels is None
    assert t.model.num_classes == 0 and not any(n.startswith("head.") for n, _ in t.model.named_parameters())
    reference = _headless_vit().eval()
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(t.model(x), reference(x))  # exactly the saved encoder: (B, 64) pooled features


@pytest.mark.parametrize("method", ["relation", "feature", "cls_token"])
def test_headless_teacher_teaches_the_methods_that_need_no_head(tiny_distill, headless_weights, method):
    run = run_distill(_headless_cfg(tiny_distill, headless_weights, method=method, limit_train=32, batch_size=16))
    _, card = load_model(run)
    assert card.task == "backbone" and card.training["teacher"].startswith("vit_small_patch16_224 + ")
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0][f"train_loss_{method}"] > 0


@pytest.mark.parametrize("method", ["logits", "logits_hard", "relation:1,logits:1"])
def test_headless_teacher_is_refused_for_logits_with_the_reason(tiny_distill, headless_weights, method):
    cfg = _headless_cfg(tiny_distill, headless_weights, method=method)
    with pytest.raises(DistillError, match=r"distils the teacher's class scores.*no classifier head.*never invents"):
        run_distill(cfg)
    _no_training(cfg)


def test_mae_and_dino_style_files_load_their_encoder(headless_weights, tmp_path, caplog):
    encoder = read_state_dict(headless_weights)
    mae = dict(encoder, mask_token=torch.zeros(1, 1, 32), **{"decoder_embed.weight": torch.zeros(32, 64)})
    torch.save({"model": mae, "epoch": 399}, tmp_path / "mae.pth")
    dino = {f"backbone.{k}": v for k, v in encoder.items()}
    dino["head.mlp.0.weight"] = torch.zeros(128, 64)  # DINO's projection head: not a classifier
    torch.save(dino, tmp_path / "dino.pth")
    x = torch.randn(2, 1, 16, 16)
    reference = _headless_vit().eval()(x)
    for name in ("mae.pth", "dino.pth"):
        with caplog.at_level(logging.INFO):
            t = load_teacher(
                "vit_small",
                weights=str(tmp_path / name),
                mean=(0.3,),
                std=(0.35,),
                img_size=16,
                arch_overrides=HEADLESS,
            )
        assert not t.is_classifier and torch.equal(t.model(x), reference)
    assert "ignored the MAE decoder and mask token (2 keys)" in caplog.text
    assert "kept the backbone.* encoder, ignored 1 other keys" in caplog.text


def test_a_cardless_weights_file_as_teacher_asks_for_its_architecture(tiny_distill, headless_weights):
    cfg = tiny_distill(teacher=str(headless_weights))
    with pytest.raises(DistillError, match=r"no card.json beside it.*--teacher <timm name.*--teacher-weights"):
        run_distill(cfg)
    _no_training(cfg)
