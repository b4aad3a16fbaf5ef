"""Checkpoint round trips, file kinds, run-folder resolution, atomic writes and resume state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.checkpoint import (
    atomic_dir,
    load_model,
    load_state,
    read_state_dict,
    rng_state,
    save_checkpoint,
    save_model,
    set_rng_state,
)
from compress.errors import CheckpointError
from compress.models import create_model
from tinymim.card import ModelCard, Preprocess


def _model_and_card(**over):
    model, kw = create_model(
        "vit_tiny", num_classes=4, img_size=16, in_chans=3, patch_size=4, depth=2, embed_dim=32, num_heads=2, **over
    )
    card = ModelCard("vit_tiny_patch16_224", kw, Preprocess((3, 16, 16), (0.5,) * 3, (0.25,) * 3), ("a", "b", "c", "d"))
    return model.eval(), card


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model, card = _model_and_card()
    save_model(tmp_path / "ck", model, card)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["card.json", "model.safetensors"]
    loaded, card2 = load_model(tmp_path / "ck")
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), loaded(x)) and card2 == card
    loaded2, _ = load_model(tmp_path / "ck" / "model.safetensors")
    assert torch.equal(model(x), loaded2(x))


def test_run_folder_prefers_best_then_last(tmp_path: Path) -> None:
    m1, card = _model_and_card()
    m2, _ = _model_and_card()
    save_model(tmp_path / "run" / "last", m1, card)
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(load_model(tmp_path / "run")[0](x), m1(x))
    save_model(tmp_path / "run" / "best", m2, card)
    assert torch.equal(load_model(tmp_path / "run")[0](x), m2(x))
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_model(tmp_path)


def test_pt_files_are_read_with_weights_only(tmp_path: Path) -> None:
    model, card = _model_and_card()
    torch.save({"model": model.state_dict()}, tmp_path / "w.pt")
    card.save(tmp_path)
    sd = read_state_dict(tmp_path / "w.pt")
    assert torch.equal(sd["pos_embed"], model.pos_embed)
    loaded, _ = load_model(tmp_path / "w.pt")
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(loaded(x), model(x))

    class Evil:  # an arbitrary object: unpickling it would run code
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        read_state_dict(tmp_path / "evil.pt")


def test_wrong_architecture_in_card_is_a_clear_error(tmp_path: Path) -> None:
    model, card = _model_and_card()
    save_model(tmp_path / "ck", model, card)
    card.replace(arch_kwargs={**card.arch_kwargs, "depth": 3}).save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"missing keys \(12\)"):
        load_model(tmp_path / "ck")
    (tmp_path / "nocard").mkdir()
    (tmp_path / "ck" / "model.safetensors").rename(tmp_path / "nocard" / "model.safetensors")
    with pytest.raises(CheckpointError, match="no model card"):
        load_model(tmp_path / "nocard")


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    model, card = _model_and_card()
    save_model(tmp_path / "last", model, card)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "last") as tmp:
            (tmp / "model.safetensors").write_bytes(b"half a file")
            raise RuntimeError("killed mid-write")
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before
    assert not (tmp_path / ".last.tmp").exists()
    # a crash between the two renames leaves only .last.old: it is still found
    (tmp_path / "last").rename(tmp_path / ".last.old")
    assert load_model(tmp_path)[1] == card


def test_resume_state_round_trip_restores_rng(tmp_path: Path) -> None:
    model, card = _model_and_card()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "last", model, card, {"optimizer": opt.state_dict(), "rng": rng_state(), "step": 1})
    state = load_state(tmp_path / "last")
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(state["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(CheckpointError, match="no resume state"):
        load_state(tmp_path)
