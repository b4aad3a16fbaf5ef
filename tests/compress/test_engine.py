"""engine: lr schedule values, gradient accumulation, lr_scale groups, evaluate by hand, non-finite loss stop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from compress.checkpoint import load_model, load_state
from compress.distributed import DistInfo
from compress.engine import cosine_lr, evaluate, train_one_epoch
from compress.errors import NonFiniteLossError
from compress.models import create_model
from compress.runner import FitSettings, fit
from tinymim.card import ModelCard, Preprocess


def test_cosine_lr_values() -> None:
    kw = dict(base_lr=1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    assert cosine_lr(0, **kw) == pytest.approx(0.1)
    assert cosine_lr(4, **kw) == pytest.approx(0.5)
    assert cosine_lr(9, **kw) == pytest.approx(1.0)
    assert cosine_lr(10, **kw) == pytest.approx(1.0)
    assert cosine_lr(60, **kw) == pytest.approx(0.55)  # halfway: min + (base - min) / 2
    assert cosine_lr(110, **kw) == pytest.approx(0.1)
    assert cosine_lr(35, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))


def _mse(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    return {"loss": ((model(x) - y) ** 2).mean()}


def test_gradient_accumulation_equals_a_bigger_batch() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randn(16, 2)
    ref = nn.Linear(5, 2)
    acc = nn.Linear(5, 2)
    acc.load_state_dict(ref.state_dict())
    big = [(x[i : i + 8], y[i : i + 8]) for i in (0, 8)]
    small = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt_acc = torch.optim.SGD(acc.parameters(), lr=0.1)
    opt_acc.param_groups[0]["lr_scale"] = 0.5
    r1 = train_one_epoch(
        ref, big, opt_ref, _mse, device=torch.device("cpu"), epoch=0, lr_fn=lambda s: 0.1, progress=False
    )
    r2 = train_one_epoch(
        acc,
        small,
        opt_acc,
        _mse,
        device=torch.device("cpu"),
        epoch=0,
        lr_fn=lambda s: 0.2,
        accum_steps=2,
        progress=False,
    )
    assert r1["step"] == r2["step"] == 2
    assert opt_acc.param_groups[0]["lr"] == pytest.approx(0.1)  # 0.2 x lr_scale 0.5
    for a, b in zip(ref.parameters(), acc.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-6)


def test_evaluate_counts_by_hand() -> None:
    class Fixed(nn.Module):  # returns the input rows as logits
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    targets = torch.tensor([0, 2, 0, 5])
    # top-1: only row 0 right -> 25%; top-5: row 1 (class 2 is 2nd) yes, row 2 (class 0 is 6th) no, row 3 (5 is 6th) no
    res = evaluate(Fixed(), [(logits[:2], targets[:2]), (logits[2:], targets[2:])], torch.device("cpu"))
    assert res["top1"] == 25.0 and res["top5"] == 50.0 and res["n"] == 4
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, targets)))


class _Images:
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    model, kw = create_model(
        "vit_tiny", num_classes=3, img_size=16, in_chans=1, patch_size=4, depth=1, embed_dim=16, num_heads=2
    )
    card = ModelCard("vit_tiny_patch16_224", kw, Preprocess((1, 16, 16), (0.5,), (0.5,)), ("a", "b", "c"))
    calls = {"n": 0}

    def loss_fn(m: nn.Module, batch) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        return {"loss": loss * float("nan") if calls["n"] > 6 else loss}  # diverges in epoch 2

    settings = FitSettings(epochs=3, batch_size=8, lr=1e-3, progress=False, best_metric=None)
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1"):
        fit(
            model,
            loss_fn=loss_fn,
            optimizer=torch.optim.AdamW(model.parameters()),
            train_set=_Images(32),
            run_dir=tmp_path / "run",
            settings=settings,
            dist=DistInfo(0, 1, 0, torch.device("cpu")),
            make_card=lambda val: card,
            config={"what": "nan test"},
        )
    state = load_state(tmp_path / "run" / "last")
    assert (state["epoch"], state["batch"], state["step"]) == (1, 0, 4)
    loaded, loaded_card = load_model(tmp_path / "run")
    assert loaded_card.training["config"] == {"what": "nan test"}
    assert all(torch.isfinite(p).all() for p in loaded.parameters())
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_bf16_autocast_step_on_cpu() -> None:
    torch.manual_seed(0)
    model, _ = create_model(
        "vit_tiny", num_classes=3, img_size=16, in_chans=1, patch_size=4, depth=1, embed_dim=16, num_heads=2
    )
    before = model.head.weight.clone()
    data = _Images(16)
    batches = [(data.x[i : i + 8], data.y[i : i + 8]) for i in (0, 8)]
    res = train_one_epoch(
        model,
        batches,
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        lambda m, b: {"loss": nn.functional.cross_entropy(m(b[0]), b[1])},
        device=torch.device("cpu"),
        epoch=0,
        amp_dtype=torch.bfloat16,
        clip_grad=1.0,
        progress=False,
    )
    assert math.isfinite(res["loss"]) and res["step"] == 2
    assert model.head.weight.dtype == torch.float32 and not torch.equal(model.head.weight, before)
