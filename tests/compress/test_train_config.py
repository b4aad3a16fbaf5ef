"""TrainConfig / EvalConfig: bad keys, types and values are rejected before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from compress.eval_config import EvalConfig
from compress.train_config import TrainConfig
from tinymim.configio import build_config
from tinymim.errors import ConfigError
from tinymim_cli.main import main


@pytest.mark.parametrize(
    "values,message",
    [
        ({"lr": -1.0}, "'lr' must be positive"),
        ({"batch_size": 0}, "'batch_size' must be >= 1"),
        ({"data": "/no/such/folder"}, "'data': folder /no/such/folder does not exist"),
        ({"batch_sise": 8}, "unknown config key 'batch_sise'.*Did you mean: batch_size"),
        ({"epochs": "ten"}, "'epochs' must be an integer"),
        ({"amp": "fp8"}, "'amp' is 'fp8'; allowed values: auto, off, bf16, fp16"),
        ({"batch_size": 7, "mixup": 0.8}, "Mixup/CutMix need an even batch_size"),
        ({"lr": "fast"}, "'lr' must be 'auto' or a number, got 'fast'"),
        ({"in_chans": 2}, "'in_chans' must be 1 or 3"),
        ({"layer_decay": 1.5}, "'layer_decay' must be in \\(0, 1\\]"),
        ({"mean": [0.5]}, "'mean' and 'std': mean and std must be given together"),
        ({"init": "/no/ckpt"}, "'init': checkpoint /no/ckpt does not exist"),
    ],
)
def test_train_config_rejects(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(TrainConfig, values)


def test_odd_batch_is_fine_without_augmentation() -> None:
    cfg = build_config(TrainConfig, {"batch_size": 7, "augment": False})
    assert cfg.batch_size == 7 and not cfg.uses_mixup


def test_cli_exits_2_with_the_message_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("epochs: 2\nwarmup: 1\n")
    assert main(["train", "--config", str(yaml_file)]) == 2
    assert "unknown config key 'warmup'" in caplog.text and "warmup_epochs" in caplog.text
    assert main(["train", "--base-lr", "-0.1"]) == 2
    assert "'base_lr' must be positive" in caplog.text
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_eval_config_needs_a_checkpoint() -> None:
    with pytest.raises(ConfigError, match="give the checkpoint"):
        build_config(EvalConfig, {})
