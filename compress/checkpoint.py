"""Checkpoint folders: ``model.safetensors`` + ``card.json`` (+ ``state.pt`` for resuming), written atomically.

A checkpoint folder is written into a hidden temp folder beside it and swapped in with renames, so a crash
mid-write leaves the previous complete folder (``last/`` or, for a crash between the two renames,
``.last.old/``, which ``resolve_checkpoint`` falls back to). Loading never unpickles code: weights come from
safetensors, or ``torch.load(weights_only=True)`` for ``.pt``/``.pth`` and the resume state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress.errors import CheckpointError
from compress.models import build_from_card, load_weights
from tinymim.card import CARD_FILE, CardError, ModelCard

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


@contextlib.contextmanager
def atomic_dir(directory: str | Path) -> Iterator[Path]:
    """Yield a temp folder; on success it replaces ``directory`` (old copy kept until the swap is done)."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp"
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir() if path.is_dir() else []:
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def write_model_files(directory: Path, model: nn.Module, card: ModelCard) -> None:
    """Write weights and card into an existing folder (no atomicity: use inside ``atomic_dir``)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").contiguous() for k, v in unwrap(model).state_dict().items()}
    save_file(sd, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "arch": card.arch})
    card.save(directory)


def save_model(directory: str | Path, model: nn.Module, card: ModelCard) -> Path:
    """Atomically write ``directory/model.safetensors`` and ``directory/card.json``; returns ``directory``."""
    with atomic_dir(directory) as tmp:
        write_model_files(tmp, model, card)
    return Path(directory)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (-> best/, else last/), a checkpoint folder, or a weights file -> the weights file."""
    p = Path(path)
    if p.is_dir():
        for sub in ("best", "last", ".last.old"):
            if (p / sub / WEIGHTS_FILE).is_file():
                return p / sub / WEIGHTS_FILE
        if (p / WEIGHTS_FILE).is_file():
            return p / WEIGHTS_FILE
        raise CheckpointError(f"{p} holds no checkpoint: expected {WEIGHTS_FILE} in it or in best/ or last/")
    if p.is_file():
        if p.suffix not in (".safetensors", ".pt", ".pth"):
            raise CheckpointError(f"{p}: unsupported weights file; use .safetensors, .pt or .pth")
        return p
    raise CheckpointError(f"checkpoint {p} does not exist")


def read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pt/.pth read with ``weights_only=True`` (no code unpickled)."""
    p = Path(weights)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p))
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is a broken checkpoint for the user
        raise CheckpointError(f"cannot read weights {p}: {err}") from None
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the model from the card beside the weights and load them strictly; returns (model, card)."""
    weights = resolve_checkpoint(path)
    try:
        card = ModelCard.load(weights.parent / CARD_FILE)
    except CardError as err:
        raise CheckpointError(str(err)) from None
    model = build_from_card(card)
    report = load_weights(model, read_state_dict(weights), strict_arch=True)
    if report["head_reset"] or report["pos_embed_resized"]:
        raise CheckpointError(f"{weights} does not match its own card.json (head or position-embedding shape)")
    return model.to(device).eval(), card


# ---------------------------------------------------------------------------------------------- resume state


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU, and CUDA when present) in weights_only-loadable types."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | Path, model: nn.Module, card: ModelCard, state: dict[str, Any] | None) -> Path:
    """Atomically write weights + card (+ ``state.pt`` resume state when ``state`` is given)."""
    with atomic_dir(directory) as tmp:
        write_model_files(tmp, model, card)
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
    return Path(directory)


def load_state(directory: str | Path) -> dict[str, Any]:
    """Read ``state.pt`` with ``weights_only=True``."""
    p = Path(directory) / STATE_FILE
    if not p.is_file():
        raise CheckpointError(f"no resume state at {p}; resume needs a run folder written by tinymim (RUN/last)")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"cannot read resume state {p}: {err}") from None


def find_resume_dir(run_dir: str | Path) -> Path | None:
    """``RUN/last`` (or the ``.last.old`` left by a crash between renames) if it holds a resume state."""
    for sub in ("last", ".last.old"):
        d = Path(run_dir) / sub
        if (d / STATE_FILE).is_file() and (d / WEIGHTS_FILE).is_file():
            return d
    return None
