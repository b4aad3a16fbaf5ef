"""The learning-rate range test behind ``--lr auto`` (Smith, "Cyclical Learning Rates", 2017; fastai's lr_find).

A short run of ``steps`` optimizer updates whose learning rate grows exponentially from ``start_lr`` to
``end_lr`` (lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))), on the real model, loss, optimizer
(param-group ``lr_scale`` and weight decay included) and augmented training data. The loss of each update is
recorded; the test stops early once the smoothed loss exceeds ``diverge`` times its minimum. Afterwards the
model, the optimizer and every RNG are put back exactly as they were, so ``--lr auto`` followed by training
is the same run as ``--lr <the picked value>``.

Smoothing: an exponential moving average of the raw losses (``beta``, bias-corrected as in fastai) for the
divergence check, and for the pick a centred moving average over ``window`` updates, which does not lag
behind the lr the way the EMA does.

Pick rules (``pick_lr``), measured in BENCHMARKS.md ("Recipes") and documented in docs/RECIPES.md:

- ``min_div2`` (the default): half the lr at the smoothed loss's minimum. The minimum is where the loss stops
  falling, Smith's upper bound for the peak of a one-cycle schedule (warm-up then decay, like ours); half of
  it leaves a margin. On ViT-T at 28 px (1,000 and 5,000 images) the minimum sat at 1.9-2.1e-3 and the best
  lr measured was 1e-3;
- ``steepest``: the lr where the smoothed loss falls fastest per unit of log lr (before its minimum; the
  PyTorch Lightning / fastai v1 suggestion). Measured, it lands far too low when the curve falls almost
  linearly in log lr (7.4e-5 on 1,000 images);
- ``min_div10``: one tenth of the lr at the minimum (the fastai "an order of magnitude below" rule of thumb).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress.checkpoint import rng_state, set_rng_state
from compress.distributed import SeededDataset
from compress.engine import autocast, to_device
from compress.errors import CompressError
from compress.plots import _pyplot

log = logging.getLogger(__name__)

RULES = ("min_div2", "steepest", "min_div10")
DEFAULT_RULE = "min_div2"


class RangeTestError(CompressError):
    """The range test could not find a learning rate (the loss never fell, or no finite loss)."""


@dataclass(frozen=True)
class RangeTestSettings:
    """How the range test runs; the defaults suit AdamW on a freshly initialised or pre-trained ViT."""

    start_lr: float = 1e-6
    end_lr: float = 1.0
    steps: int = 200
    beta: float = 0.9  # EMA for the divergence check
    window: int = 15  # centred moving average (updates) for the pick
    diverge: float = 4.0  # stop once the EMA loss exceeds diverge x its minimum
    rule: str = DEFAULT_RULE

    def __post_init__(self) -> None:
        if not 0 < self.start_lr < self.end_lr:
            raise ValueError(f"range test needs 0 < start_lr < end_lr, got {self.start_lr}, {self.end_lr}")
        if self.steps < 10:
            raise ValueError(f"range test needs at least 10 steps, got {self.steps}")
        if self.rule not in RULES:
            raise ValueError(f"unknown range-test rule {self.rule!r}; choose one of {', '.join(RULES)}")


@dataclass
class RangeTestResult:
    """Losses per tried lr, the smoothed curve, the picked lr and the rule that picked it."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    lr: float
    rule: str
    picks: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "rule": self.rule,
            "picks": self.picks,
            "steps": len(self.lrs),
            "stopped_early": self.stopped_early,
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
        }


def lr_at(i: int, s: RangeTestSettings) -> float:
    """The lr of update ``i`` (0-based): exponential from start_lr (i = 0) to end_lr (i = steps - 1)."""
    return s.start_lr * (s.end_lr / s.start_lr) ** (i / (s.steps - 1))


def centred_average(values: list[float], window: int) -> list[float]:
    """Mean over ``window`` neighbours centred on each point (shrinking at the ends); no lag."""
    half = max(window // 2, 0)
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append(sum(values[lo:hi]) / (hi - lo))
    return out


def pick_lr(lrs: list[float], smoothed: list[float], rule: str) -> float:
    """The learning rate that ``rule`` (see the module docstring) reads off a smoothed range-test curve."""
    if len(lrs) != len(smoothed) or len(lrs) < 3:
        raise RangeTestError(f"a range test needs at least 3 points, got {len(lrs)}")
    i_min = min(range(len(smoothed)), key=smoothed.__getitem__)
    if rule in ("min_div2", "min_div10"):
        if i_min < 2:
            raise RangeTestError(
                "the loss never fell during the range test (its minimum is at the first learning rates); "
                "give --lr explicitly, or check the data and labels"
            )
        return lrs[i_min] / (2 if rule == "min_div2" else 10)
    if rule == "steepest":
        if i_min < 2:
            raise RangeTestError(
                "the loss never fell during the range test (its minimum is at the first learning rates); "
                "give --lr explicitly, or check the data and labels"
            )
        # slope of the smoothed loss per unit of log(lr), central differences, up to the minimum
        slopes = [
            (smoothed[i + 1] - smoothed[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1])) for i in range(1, i_min)
        ]
        return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]
    raise RangeTestError(f"unknown range-test rule {rule!r}; choose one of {', '.join(RULES)}")


def _cycle(batches: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    while True:
        empty = True
        for b in batches():
            empty = False
            yield b
        if empty:
            raise RangeTestError("the range test got no training batch: lower the batch size or add data")


def lr_range_test(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], Iterator[Any]],
    *,
    device: torch.device,
    settings: RangeTestSettings | None = None,
    amp_dtype: torch.dtype | None = None,
) -> RangeTestResult:
    """Run the range test and restore ``model``, ``optimizer`` and the RNGs; returns the curve and the pick.

    ``batches()`` returns a fresh iterator over training batches (it is called again when one runs out);
    ``loss_fn(model, batch)`` is the training loss (Mixup, distillation, ...); ``optimizer``'s param groups
    may carry ``lr_scale`` (layer decay), applied as in training.
    """
    s = settings or RangeTestSettings()
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optimizer.state_dict())
    rngs = rng_state()
    was_training = model.training
    lrs: list[float] = []
    losses: list[float] = []
    ema, best_ema, stopped = 0.0, math.inf, False
    model.train()
    try:
        stream = _cycle(batches)
        for i in range(s.steps):
            lr = lr_at(i, s)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = to_device(next(stream), device)
            with autocast(device, amp_dtype):
                loss = loss_fn(model, batch)["loss"]
            value = float(loss.detach())
            if not math.isfinite(value):
                stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lrs.append(lr)
            losses.append(value)
            ema = s.beta * ema + (1 - s.beta) * value
            debiased = ema / (1 - s.beta ** (i + 1))
            best_ema = min(best_ema, debiased)
            if i >= s.window and debiased > s.diverge * best_ema:
                stopped = True
                break
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        set_rng_state(rngs)
        model.train(was_training)
    if len(lrs) < 3:
        raise RangeTestError(
            f"the loss was not finite from the first range-test steps (lr {s.start_lr:g}); give --lr explicitly"
        )
    smoothed = centred_average(losses, s.window)
    picks = {}
    for rule in RULES:
        try:
            picks[rule] = pick_lr(lrs, smoothed, rule)
        except RangeTestError:
            pass
    if s.rule not in picks:
        pick_lr(lrs, smoothed, s.rule)  # raises with the reason
    result = RangeTestResult(lrs, losses, smoothed, picks[s.rule], s.rule, picks, stopped)
    log.info(
        "lr range test: %d updates from %.2g to %.2g; picked lr %.3g (%s; %s)",
        len(lrs),
        lrs[0],
        lrs[-1],
        result.lr,
        s.rule,
        ", ".join(f"{k} {v:.3g}" for k, v in picks.items()),
    )
    return result


def plot_range_test(result: RangeTestResult, path: str | Path) -> Path:
    """Loss vs lr (log axis): raw losses, the smoothed curve and a line at each rule's pick."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(result.lrs, result.losses, color="0.75", lw=0.8, label="loss per update")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed")
    for k, (rule, lr) in enumerate(sorted(result.picks.items())):
        style = "-" if rule == result.rule else ":"
        ax.axvline(
            lr, color=f"C{k + 1}", ls=style, label=f"{rule}: {lr:.2g}" + (" (picked)" if rule == result.rule else "")
        )
    ax.set_xscale("log")
    top = max(result.smoothed[: max(3, len(result.smoothed) // 10)])
    ax.set_ylim(min(result.smoothed) * 0.9, max(top, min(result.smoothed)) * 1.6)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


RANGE_JSON, RANGE_PNG = "lr_range_test.json", "lr_range_test.png"


def auto_lr(
    run_dir: str | Path,
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    train_set: Any,
    *,
    batch_size: int,
    effective_batch: int,
    seed: int,
    dist: Any,
    amp_dtype: torch.dtype | None = None,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    resume: bool = False,
    settings: RangeTestSettings | None = None,
) -> float:
    """``--lr auto``: the peak lr picked by a range test on ``train_set``, written to RUN/lr_range_test.{json,png}.

    The test runs on rank 0 with batches of ``batch_size`` (the per-process batch); its pick is scaled
    linearly to ``effective_batch`` (accumulation and processes, the same rule as ``base_lr``) and sent to
    every rank. Resuming a run reuses the lr its range test picked instead of testing again.
    """
    run_dir = Path(run_dir)
    saved = run_dir / RANGE_JSON
    if resume and saved.is_file():
        lr = float(json.loads(saved.read_text())["effective_lr"])
        log.info("--lr auto: reusing lr %.3g from %s", lr, saved)
        return lr
    lr = 0.0
    if dist.is_main:
        data = SeededDataset(train_set, seed + 7919)  # its own augmentation draws, not the first epoch's

        def batches() -> Iterator[Any]:
            sampler = torch.utils.data.RandomSampler(data, generator=torch.Generator().manual_seed(seed))
            return iter(
                torch.utils.data.DataLoader(
                    data,
                    batch_size=batch_size,
                    sampler=sampler,
                    drop_last=True,
                    collate_fn=collate_fn,
                    num_workers=num_workers,
                )
            )

        result = lr_range_test(
            model, loss_fn, optimizer, batches, device=dist.device, settings=settings, amp_dtype=amp_dtype
        )
        lr = result.lr * effective_batch / batch_size
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {**result.to_dict(), "batch_size": batch_size, "effective_batch": effective_batch, "effective_lr": lr}
        saved.write_text(json.dumps(record, indent=1))
        plot_range_test(result, run_dir / RANGE_PNG)
        if effective_batch != batch_size:
            log.info("--lr auto: %.3g at batch %d -> %.3g at batch %d", result.lr, batch_size, lr, effective_batch)
    if dist.distributed:
        import torch.distributed as tdist

        box = [lr]
        tdist.broadcast_object_list(box, src=0)
        lr = float(box[0])
    return lr
