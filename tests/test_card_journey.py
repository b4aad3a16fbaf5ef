"""The model card's preprocessing travels unchanged: distill -> train --init -> export bundle -> serving.

A student distilled with its own --student-mean/--student-std must keep them when ``train --init`` fine-tunes
it (the data's statistics would silently differ from what its weights learnt), and the bundle must carry the
same ``Preprocess`` to serve/. ``training_preprocess`` is checked field by field: flags win, else the init
card's values, else the data's.
"""

from __future__ import annotations

import os

import pytest
import torch

from compress.checkpoint import save_model
from compress.data import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, DataBundle
from compress.distill.config import DistillConfig
from compress.distill.run import run_distill
from compress.errors import ModelError
from compress.models import create_model
from compress.recipe import train_classifier, training_preprocess
from compress.train_config import TrainConfig
from export.config import ExportConfig
from export.pipeline import export_bundle
from serve.bundle import load_bundle
from serve.preprocess import Preprocessor
from tinymim.card import ModelCard, Preprocess
from tinymim.configio import build_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STUDENT_MEAN, STUDENT_STD = (0.5,), (0.25,)  # far from Fashion-MNIST's (0.286,) / (0.353,)


@pytest.fixture
def teacher(tmp_path):
    torch.manual_seed(0)
    model, kw = create_model(
        "vit_small", num_classes=10, img_size=16, in_chans=1, patch_size=4, depth=2, embed_dim=64, num_heads=4
    )
    card = ModelCard(
        "vit_small_patch16_224",
        kw,
        Preprocess((1, 16, 16), FASHION_MNIST_MEAN, FASHION_MNIST_STD),
        FASHION_MNIST_CLASSES,
    )
    return save_model(tmp_path / "teacher", model, card)


@pytest.mark.slow
def test_student_normalisation_survives_finetune_and_export(teacher, tmp_path):
    run = {"device": "cpu", "amp": "off", "progress": False, "batch_size": 32, "limit_val": 50}
    distilled = run_distill(
        build_config(
            DistillConfig,
            dict(
                run,
                teacher=str(teacher),
                student="vit_tiny",
                student_depth=2,
                student_embed_dim=32,
                student_num_heads=2,
                student_mean=STUDENT_MEAN,
                student_std=STUDENT_STD,
                limit_train=64,
                epochs=1,
                warmup_epochs=0,
                output=str(tmp_path / "distill"),
            ),
        )
    )
    assert ModelCard.load(distilled / "last").preprocess.mean == STUDENT_MEAN
    finetuned = train_classifier(
        build_config(
            TrainConfig,
            dict(
                run,
                init=str(distilled),
                limit_train=64,
                epochs=1,
                augment=False,
                checkpoint_every_steps=0,
                output=str(tmp_path / "finetune"),
            ),
        )
    )
    card = ModelCard.load(finetuned / "last")
    assert card.preprocess == ModelCard.load(distilled / "last").preprocess
    assert (card.preprocess.mean, card.preprocess.std) == (STUDENT_MEAN, STUDENT_STD)

    result = export_bundle(
        ExportConfig(
            checkpoint=str(finetuned),
            out=str(tmp_path / "bundle"),
            formats=("onnx",),
            eval_images=40,
            calib_images=8,
            max_batch=4,
            latency_repeats=1,
            threads=1,
        )
    )
    bundle = load_bundle(result.bundle)
    assert bundle.preprocess == card.preprocess
    served = Preprocessor.from_card(bundle.preprocess)
    assert (served.mean, served.std) == (STUDENT_MEAN, STUDENT_STD)


def _data(native_size: int | None = 28) -> DataBundle:
    return DataBundle(
        train=[], val=[], classes=("a", "b"), mean=(0.3,), std=(0.4,), native_size=native_size, channels=1
    )


def _cfg(**values) -> TrainConfig:
    return build_config(TrainConfig, {"device": "cpu", **values})


INIT = Preprocess((1, 28, 28), (0.5,), (0.25,), "bilinear", 0.9)


def test_init_card_preprocessing_is_inherited():
    pre = training_preprocess(_cfg(), _data(), INIT, channels=1, img_size=28)
    assert pre == INIT


def test_flags_override_the_init_card_one_by_one():
    pre = training_preprocess(
        _cfg(mean=(0.1,), std=(0.2,), interpolation="nearest", crop_pct=0.8), _data(), INIT, channels=1, img_size=28
    )
    assert (pre.mean, pre.std, pre.interpolation, pre.crop_pct) == ((0.1,), (0.2,), "nearest", 0.8)
    only_crop = training_preprocess(_cfg(crop_pct=0.8), _data(), INIT, channels=1, img_size=28)
    assert only_crop == INIT.replace(crop_pct=0.8)


def test_without_init_the_data_decides():
    assert training_preprocess(_cfg(), _data(28), None, channels=1, img_size=28) == Preprocess(
        (1, 28, 28), (0.3,), (0.4,), "bicubic", 1.0
    )
    assert training_preprocess(_cfg(), _data(None), None, channels=1, img_size=28).crop_pct == 0.875


def test_init_statistics_adapt_to_another_channel_count():
    pre = training_preprocess(_cfg(), _data(), INIT, channels=3, img_size=28)
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.25, 0.25, 0.25)


def test_flag_statistics_of_the_wrong_length_are_refused():
    with pytest.raises(ModelError, match="3 input channels: mean/std need 3 values"):
        training_preprocess(_cfg(mean=(0.1,), std=(0.2,)), _data(), INIT, channels=3, img_size=28)
