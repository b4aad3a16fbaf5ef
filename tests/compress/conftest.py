"""Shared helpers for compress/ tests: tiny models, tiny image folders, subprocess CLI runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

# A 2-block ViT on 16-28 px images: seconds per epoch on one CPU thread.
TINY_ARCH = ["--depth", "2", "--embed-dim", "32", "--num-heads", "2"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    return env


def tinymim_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinymim_cli", *args]


def run_tinymim(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(tinymim_cmd(*args), cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def kill_after_second_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float = 180) -> None:
    """SIGKILL ``proc`` right after it swaps in its second ``last/`` checkpoint (a new folder inode).

    Waiting for an event, not a fixed sleep, keeps the kill mid-epoch on any machine: on a fast CPU a sleep
    lets the run reach an epoch boundary or finish; on a loaded one it may not even pass the first checkpoint.
    The kill lands a few steps after the second checkpoint at most, possibly while the third is being saved.
    """
    last = run_dir / "last"
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
        try:
            if (last / "state.pt").exists():
                seen.add(last.stat().st_ino)
        except FileNotFoundError:  # between the two renames of a checkpoint swap
            pass
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def write_image(
    path: Path,
    color: tuple[int, int, int],
    *,
    size: int = 20,
    mode: str = "RGB",
    fmt: str | None = None,
    noise_seed: int = 0,
) -> Path:
    """A flat-coloured image with a little noise, saved in the format given by the suffix."""
    rng = np.random.default_rng(noise_seed)
    arr = np.clip(np.array(color)[None, None, :] + rng.integers(-10, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode == "L":
        img = img.convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture
def color_folder(tmp_path: Path) -> Path:
    """PATH/<class>/*.{png,jpg,bmp,webp}: 3 colour classes x 8 images, mixed formats and modes."""
    root = tmp_path / "colors"
    exts = [".png", ".jpg", ".bmp", ".webp"]
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(8):
            write_image(root / name / f"{i}{exts[i % 4]}", color, mode="L" if i == 2 else "RGB", noise_seed=10 * c + i)
    return root
