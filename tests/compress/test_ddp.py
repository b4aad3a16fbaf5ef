"""The same train command under torchrun with 2 CPU processes (gloo): sharded data, rank-0 saving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from compress.checkpoint import load_model, load_state
from tests.compress.conftest import ROOT, TINY_ARCH, cli_env


def test_two_process_ddp_on_gloo(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "tinymim_cli",
        "train",
        "--limit-train",
        "128",
        "--limit-val",
        "32",
        *TINY_ARCH,
        "--img-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-progress",
        "--output",
        str(run),
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "rank 1 of 2" in res.stderr and "rank 0 of 2" in res.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # 128 images / 2 processes / batch 16 = 4 updates per epoch, each process sees its own shard
    assert [r["epoch"] for r in records] == [0, 1]
    assert [r["step"] for r in records] == [4, 8]
    state = load_state(run / "last")
    assert state["world_size"] == 2 and state["step"] == 8 and len(state["rng"]) == 2
    # the two ranks drew different augmentation/drop-path randomness
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    model, card = load_model(run)
    assert card.training["config"]["batch_size"] == 16
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
