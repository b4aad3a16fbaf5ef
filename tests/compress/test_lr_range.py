"""The learning-rate range test (``--lr auto``): its pick rules, what it leaves behind, and train/distill wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from compress.checkpoint import load_model, read_state_dict
from compress.distill.config import DistillConfig
from compress.distill.run import run_distill
from compress.lr_range import (
    RangeTestError,
    RangeTestSettings,
    centred_average,
    lr_at,
    lr_range_test,
    pick_lr,
)
from compress.recipe import train_classifier
from compress.train_config import TrainConfig
from tinymim.configio import build_config

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2, "progress": False, "limit_val": 64, "batch_size": 32}


def test_lrs_grow_exponentially_from_start_to_end() -> None:
    s = RangeTestSettings(start_lr=1e-5, end_lr=1e-1, steps=13)
    assert [lr_at(i, s) for i in range(0, 13, 3)] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])


def test_pick_rules_on_a_known_curve() -> None:
    # loss = 2 - tanh(log10(lr) + 3) for lr <= 1e-1, then rising: steepest fall at 1e-3, minimum at 1e-1
    lrs = [10 ** (-6 + 0.05 * i) for i in range(121)]  # 1e-6 .. 1
    loss = [2 - math.tanh(math.log10(lr) + 3) if lr <= 0.1 + 1e-12 else 1.0 + 5 * (lr - 0.1) for lr in lrs]
    assert pick_lr(lrs, loss, "steepest") == pytest.approx(1e-3, rel=0.13)
    assert pick_lr(lrs, loss, "min_div10") == pytest.approx(1e-2, rel=0.13)
    assert pick_lr(lrs, loss, "min_div2") == pytest.approx(5e-2, rel=0.13)


def test_a_loss_that_never_falls_is_an_error_not_a_guess() -> None:
    lrs = [10 ** (-6 + 0.1 * i) for i in range(40)]
    rising = [1.0 + 0.01 * i for i in range(40)]
    with pytest.raises(RangeTestError, match="never fell"):
        pick_lr(lrs, rising, "steepest")


def test_centred_average_does_not_lag() -> None:
    step = [0.0] * 10 + [1.0] * 10
    smooth = centred_average(step, 5)
    assert smooth[9] == pytest.approx(0.4) and smooth[10] == pytest.approx(0.6)  # symmetric around the jump


def _toy() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt, [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]


def _ce(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"loss": nn.functional.cross_entropy(model(batch[0]), batch[1])}


def test_range_test_restores_model_optimizer_and_rngs() -> None:
    model, opt, batches = _toy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = json.dumps(opt.state_dict()["param_groups"])
    rng = torch.get_rng_state()
    result = lr_range_test(
        model, _ce, opt, lambda: iter(batches), device=torch.device("cpu"), settings=RangeTestSettings(steps=120)
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.state_dict()["state"] == {} and json.dumps(opt.state_dict()["param_groups"]) == opt_before
    assert torch.equal(torch.get_rng_state(), rng)
    # the lr grew every update, the loss fell before it blew up, and the pick lies inside the tested range
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert min(result.smoothed) < result.smoothed[0] - 0.1
    assert result.lrs[0] < result.lr < result.lrs[-1] and set(result.picks) == {"min_div2", "steepest", "min_div10"}


def test_range_test_stops_when_the_loss_diverges() -> None:
    model, opt, batches = _toy()
    s = RangeTestSettings(start_lr=1e-4, end_lr=1e4, steps=200)
    result = lr_range_test(model, _ce, opt, lambda: iter(batches), device=torch.device("cpu"), settings=s)
    assert result.stopped_early and len(result.lrs) < 200


def test_train_lr_auto_equals_training_with_the_picked_lr(tmp_path: Path) -> None:
    common = {"limit_train": 256, "epochs": 1, "augment": False, **TINY}
    auto = train_classifier(build_config(TrainConfig, {**common, "lr": "auto", "output": str(tmp_path / "auto")}))
    record = json.loads((auto / "lr_range_test.json").read_text())
    picked = record["effective_lr"]
    assert (auto / "lr_range_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["rule"] == "min_div2" and picked == record["picks"]["min_div2"]
    _, card = load_model(auto)
    assert card.training["lr"] == picked and card.training["recipe"]["lr_auto"] is True
    assert yaml.safe_load((auto / "config.yaml").read_text())["lr"] == "auto"  # --resume reuses the json's pick
    fixed = train_classifier(build_config(TrainConfig, {**common, "lr": picked, "output": str(tmp_path / "fixed")}))
    a, b = read_state_dict(auto / "last" / "model.safetensors"), read_state_dict(fixed / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the range test left nothing behind


def test_distill_lr_auto_writes_the_range_test_and_trains_with_its_pick(tmp_path: Path) -> None:
    teacher = train_classifier(
        build_config(TrainConfig, {"limit_train": 128, "epochs": 1, "lr": 1e-3, "output": str(tmp_path / "t"), **TINY})
    )
    run = run_distill(
        build_config(
            DistillConfig,
            {
                "teacher": str(teacher),
                "student": "vit_tiny",
                "student_depth": 2,
                "student_embed_dim": 32,
                "student_num_heads": 2,
                "limit_train": 256,
                "limit_val": 32,
                "epochs": 1,
                "batch_size": 32,
                "lr": "auto",
                "progress": False,
                "output": str(tmp_path / "d"),
            },
        )
    )
    record = json.loads((run / "lr_range_test.json").read_text())
    assert (run / "lr_range_test.png").is_file() and record["steps"] >= 20
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    # one epoch of 8 updates, warm-up 5% -> the cosine from the picked lr; the last update's lr is below it
    assert 0 < first["lr"] < record["effective_lr"]


def test_a_resumed_run_reuses_the_picked_lr(tmp_path: Path) -> None:
    from compress.distributed import DistInfo
    from compress.lr_range import RANGE_JSON, auto_lr

    model, opt, batches = _toy()
    (tmp_path / RANGE_JSON).write_text(json.dumps({"lr": 0.01, "effective_lr": 0.02}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dist = DistInfo(0, 1, 0, torch.device("cpu"))
    lr = auto_lr(tmp_path, model, _ce, opt, batches, batch_size=32, effective_batch=64, seed=0, dist=dist, resume=True)
    assert lr == 0.02 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.state_dict()["state"] == {}  # no range test ran
