"""benchmarks/ablation.py's own logic: a given teacher is used as it is, ``--teacher random`` with a given teacher
is that teacher's architecture and card with untrained weights (the negative control), and the fixed train
values can be overridden key by key."""

from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import load_file, save_file

from tests.benchmark_scripts import load_benchmark


def test_a_given_teacher_is_used_as_it_is(teacher_ckpt, tmp_path):
    bench = load_benchmark("ablation")
    assert bench.make_teacher(tmp_path, "strong", 7, "cpu", given=teacher_ckpt) == teacher_ckpt
    assert not list(tmp_path.iterdir())  # nothing trained


def test_random_teacher_of_a_given_run_keeps_its_card_and_not_its_weights(teacher_ckpt, tmp_path):
    bench = load_benchmark("ablation")
    trained = tmp_path / "trained"  # the fixture teacher with moved weights (it is itself a seed-0 draw)
    shutil.copytree(teacher_ckpt, trained)
    save_file(
        {k: v + 0.5 for k, v in load_file(teacher_ckpt / "model.safetensors").items()}, trained / "model.safetensors"
    )
    work = tmp_path / "work"
    run = bench.make_teacher(work, "random", 7, "cpu", given=trained)
    assert run == work / "teacher_random_of_trained"
    card, given_card = (json.loads((p / "card.json").read_text()) for p in (run, trained))
    assert card["arch_kwargs"] == given_card["arch_kwargs"] and card["labels"] == given_card["labels"]
    assert card["metrics"] == {} and card["training"] == {"command": "random init"}
    mine, given = load_file(run / "model.safetensors"), load_file(trained / "model.safetensors")
    assert mine.keys() == given.keys()
    assert not torch.equal(mine["blocks.0.attn.qkv.weight"], given["blocks.0.attn.qkv.weight"])
    stamp = (run / "model.safetensors").stat().st_mtime_ns
    assert bench.make_teacher(work, "random", 7, "cpu", given=trained) == run  # reused, not redrawn
    assert (run / "model.safetensors").stat().st_mtime_ns == stamp


def test_train_overrides_replace_or_add_fixed_values():
    bench = load_benchmark("ablation")
    assert bench._overrides("") == ("warmup_epochs=1", "drop_path=0", "weight_decay=0.05", "min_lr=1e-6")
    assert bench._overrides("drop_path=0.1,mixup=0.8") == (
        "warmup_epochs=1",
        "drop_path=0.1",
        "weight_decay=0.05",
        "min_lr=1e-6",
        "mixup=0.8",
    )
