"""One epoch of training and one pass of evaluation, as functions taking explicit objects (MAE style).

``train_one_epoch`` knows nothing about the task: the caller passes ``loss_fn(model, batch) -> {"loss": ...}``
(classification with Mixup, relation distillation, ...). The learning rate is set per optimizer update
from ``lr_fn(step)``; each param group's ``lr_scale`` (timm layer decay) multiplies it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import NonFiniteLossError

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]


def cosine_lr(step: int, *, base_lr: float, total_steps: int, warmup_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up then half-cosine decay, per update step.

    lr(s) = base_lr * (s + 1) / W                                    for s < W
    lr(s) = min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2   otherwise
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """ "auto": bf16 on CUDA where supported, else fp16 on CUDA; off on CPU. "bf16"/"fp16"/"off" as given."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles), so that bf16 autocast speeds
    training up; elsewhere bf16 is emulated and slower than fp32 (docs/RECIPES.md, "Mixed precision on CPU").
    No public torch API says this; these are torch.cpu's own CPUID probes (the ones its tests use)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def make_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> Any | None:
    """A GradScaler for fp16 on CUDA (bf16 and fp32 need none)."""
    if amp_dtype == torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tuple/list/dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def batch_size_of(batch: Any) -> int:
    """Leading dimension of the first tensor in a batch."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)):
        return batch_size_of(batch[0])
    if isinstance(batch, dict):
        return batch_size_of(next(iter(batch.values())))
    return 1


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    device: torch.device,
    epoch: int,
    lr_fn: Callable[[int], float] | None = None,
    start_step: int = 0,
    num_updates: int | None = None,
    accum_steps: int = 1,
    clip_grad: float | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: Any | None = None,
    meters: dict[str, float] | None = None,
    on_update: Callable[[int, int, dict[str, float]], None] | None = None,
    progress: bool = True,
    start_batch: int = 0,
) -> dict[str, float]:
    """Train over ``loader`` for ``num_updates`` optimizer updates (default: all full accumulation groups).

    ``start_step`` is the global update count before this call (for ``lr_fn``), ``start_batch`` the number
    of batches of this epoch already done (the loader must skip them itself). ``meters`` holds running sums
    (``n`` images, ``sum_<key>``), continued across a mid-epoch resume. ``on_update(step, batches_done,
    meters)`` runs after every optimizer update (the runner checkpoints there). Returns the epoch means of
    every loss_fn key plus ``lr``, ``img_per_s`` and ``step``. Raises NonFiniteLossError on NaN/Inf loss.
    """
    from tqdm import tqdm

    model.train()
    meters = dict(meters or {})
    total_batches = len(loader) if num_updates is None else num_updates * accum_steps - start_batch
    total_batches = min(total_batches, len(loader))
    step, lr = start_step, float("nan")
    seen, t0 = 0, time.perf_counter()
    bar = tqdm(
        total=total_batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False, dynamic_ncols=True
    )
    optimizer.zero_grad(set_to_none=True)
    try:
        for i, batch in enumerate(loader):
            if i >= total_batches:
                break
            micro = (start_batch + i) % accum_steps
            if micro == 0 and lr_fn is not None:
                lr = lr_fn(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = to_device(batch, device)
            last_micro = micro == accum_steps - 1
            sync = contextlib.nullcontext() if last_micro or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with autocast(device, amp_dtype):
                    out = loss_fn(model, batch)
                loss = out["loss"]
                if not torch.isfinite(loss).all():
                    raise NonFiniteLossError(
                        f"loss is {loss.item()} at epoch {epoch}, update {step}: the run stops here and the last "
                        "checkpoint is kept. Lower the learning rate, enable --clip-grad, or use --amp off."
                    )
                scaled = loss / accum_steps
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            n = batch_size_of(batch)
            seen += n
            meters["n"] = meters.get("n", 0.0) + n
            for key, value in out.items():
                meters[f"sum_{key}"] = meters.get(f"sum_{key}", 0.0) + float(value.detach()) * n
            if last_micro:
                _optimizer_step(model, optimizer, scaler, clip_grad)
                step += 1
                if on_update is not None:
                    on_update(step, start_batch + i + 1, meters)
            rate = seen / max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}", refresh=False)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    result = {key[4:]: v / max(meters.get("n", 1.0), 1.0) for key, v in meters.items() if key.startswith("sum_")}
    result.update(lr=lr, img_per_s=seen / max(elapsed, 1e-9), step=step, train_time_s=elapsed)
    return result


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any | None, clip: float | None) -> None:
    if clip:
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    return_outputs: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Cross-entropy ``loss``, ``top1`` and ``top5`` (percent) over a loader of (images, int labels).

    top-k: percentage of samples whose label is among the k largest logits (k = min(5, classes) for top5).
    With ``return_outputs`` also ``logits`` (N, K) and ``targets`` (N,) as CPU tensors.
    """
    from tqdm import tqdm

    model.eval()
    n, loss_sum, c1, c5 = 0, 0.0, 0, 0
    all_logits, all_targets = [], []
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not progress):
        images, targets = images.to(device), targets.to(device)
        with autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices
        hit = topk == targets[:, None]
        c1 += int(hit[:, 0].sum())
        c5 += int(hit.any(dim=1).sum())
        n += int(targets.shape[0])
        if return_outputs:
            all_logits.append(logits.cpu())
            all_targets.append(targets.cpu())
    result: dict[str, Any] = {
        "loss": loss_sum / max(n, 1),
        "top1": 100.0 * c1 / max(n, 1),
        "top5": 100.0 * c5 / max(n, 1),
        "n": n,
    }
    if return_outputs:
        result["logits"] = torch.cat(all_logits) if all_logits else torch.empty(0)
        result["targets"] = torch.cat(all_targets) if all_targets else torch.empty(0, dtype=torch.long)
    return result
