"""End to end: train a tiny teacher, distil a student with relations, fine-tune it with ``train --init``."""

from __future__ import annotations

import json

import torch

from compress.checkpoint import load_model
from compress.data import TransformDataset, build_datasets, eval_transform
from compress.distill.config import DistillConfig
from compress.distill.run import run_distill as distill
from compress.engine import evaluate
from compress.models import build_from_card
from compress.recipe import train_classifier as train
from compress.train_config import TrainConfig
from tinymim.configio import build_config

TINY = dict(
    limit_val=300,
    img_size=16,
    patch_size=4,
    depth=2,
    device="cpu",
    progress=False,
    augment=False,
    amp="off",
    checkpoint_every_steps=0,
)


def test_distil_then_finetune_beats_an_untrained_student(tmp_path):
    teacher = train(
        build_config(
            TrainConfig,
            dict(
                TINY,
                limit_train=1500,
                embed_dim=64,
                num_heads=4,
                epochs=3,
                batch_size=32,
                base_lr=1.6e-2,
                output=str(tmp_path / "teacher"),
            ),
        )
    )
    run = distill(
        build_config(
            DistillConfig,
            dict(
                teacher=str(teacher),
                student="vit_tiny",
                student_depth=2,
                student_embed_dim=32,
                student_num_heads=2,
                limit_train=1500,
                limit_val=50,
                epochs=3,
                batch_size=32,
                base_lr=1.5e-3,
                device="cpu",
                amp="off",
                progress=False,
                output=str(tmp_path / "distill"),
            ),
        )
    )
    losses = [json.loads(x)["train_loss_relation"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]  # the student's relations moved towards the teacher's
    tuned = train(
        build_config(
            TrainConfig,
            dict(
                TINY,
                limit_train=1500,
                epochs=2,
                batch_size=32,
                base_lr=1.6e-2,
                layer_decay=0.75,
                init=str(run),
                output=str(tmp_path / "finetune"),
            ),
        )
    )
    model, card = load_model(tuned)
    assert card.task == "classifier" and card.distilled_block_heads is None
    assert model.blocks[-1].attn.num_heads == 2  # normal head count restored for fine-tuning

    data = build_datasets("builtin:fashion-mnist", in_chans=1, limit_train=10, limit_val=300, seed=0)
    val = torch.utils.data.DataLoader(TransformDataset(data.val, eval_transform(card.preprocess)), batch_size=100)
    tuned_acc = evaluate(model, val, torch.device("cpu"))["top1"]
    torch.manual_seed(0)
    untrained_acc = evaluate(build_from_card(card).eval(), val, torch.device("cpu"))["top1"]
    assert tuned_acc > untrained_acc + 15, (tuned_acc, untrained_acc)
