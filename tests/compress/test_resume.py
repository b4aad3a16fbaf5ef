"""A run SIGKILLed mid-epoch and resumed ends with bitwise the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file

from compress.checkpoint import load_state
from tests.compress.conftest import ROOT, TINY_ARCH, cli_env, kill_after_second_checkpoint, run_tinymim, tinymim_cmd

# Augmentations stay on (RandAugment, erasing, Mixup/CutMix, drop path): their RNG must resume exactly too.
ARGS = [
    "train",
    "--limit-train",
    "384",
    "--limit-val",
    "32",
    *TINY_ARCH,
    "--img-size",
    "16",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--checkpoint-every-steps",
    "5",
    "--no-progress",
    "--crop-scale-min",
    "0.3",
]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path: Path) -> None:
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    done = run_tinymim(*ARGS, "--output", str(ref))
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen(
        tinymim_cmd(*ARGS, "--output", str(killed)),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_after_second_checkpoint(proc, killed)  # past the first checkpoint; the kill may even land mid-save
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    state = load_state(killed / "last" if (killed / "last").exists() else killed / ".last.old")
    assert state["epoch"] < 2 and state["batch"] > 0, f"not killed mid-epoch: {state['epoch']=}, {state['batch']=}"

    resumed = run_tinymim("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in resumed.stderr

    a, b = _weights(ref), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    ra = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rb] == [0, 1]
    for x, y in zip(ra, rb, strict=True):
        assert x["val_top1"] == y["val_top1"] and x["val_loss"] == y["val_loss"] and x["step"] == y["step"]
        assert abs(x["train_loss"] - y["train_loss"]) < 1e-9


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = run_tinymim("train", "--resume", str(tmp_path / "empty"), "--limit-train", "16", *TINY_ARCH, "--no-progress")
    assert res.returncode == 1
    assert "nothing to resume" in res.stderr
