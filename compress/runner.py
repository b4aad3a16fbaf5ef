"""``fit``: the reusable run loop around ``engine.train_one_epoch`` shared by train and distill.

It owns everything about a run folder (see docs/ARCHITECTURE.md): config.yaml, metrics.jsonl, curves.png,
RUN/last (weights + card + resume state, every epoch and every ``checkpoint_every_steps`` updates) and
RUN/best (by ``best_metric``). Under torchrun it wraps the model in DDP, shards data with a
DistributedSampler and saves/logs on rank 0 only. Resuming restores weights, optimizer, scaler, step,
sampler position and every RNG, so an interrupted run ends bitwise-equal to an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from compress.checkpoint import (
    WEIGHTS_FILE,
    find_resume_dir,
    load_state,
    read_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap,
)
from compress.distributed import DistInfo, ResumableSampler, SeededDataset, barrier
from compress.engine import LossFn, cosine_lr, evaluate, make_scaler, resolve_amp, train_one_epoch
from compress.errors import CheckpointError, DataError
from compress.models import load_weights
from compress.plots import plot_curves
from tinymim.card import ModelCard

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class FitSettings:
    """How ``fit`` runs. ``batch_size`` is per process; ``lr`` is the peak (already scaled) learning rate."""

    epochs: int
    batch_size: int
    lr: float
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    accum_steps: int = 1
    clip_grad: float | None = None
    amp: str = "auto"  # auto | off | bf16 | fp16
    num_workers: int = 0
    seed: int = 0
    checkpoint_every_steps: int = 0  # 0: resume state only at epoch ends
    best_metric: str | None = "top1"  # key of the eval dict, higher is better; None: no best/
    eval_batch_size: int | None = None
    find_unused_parameters: bool = False
    progress: bool = True
    patience: int = 3  # epochs without a new best ``best_metric`` before the log says validation stopped improving


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None

    @property
    def last(self) -> dict[str, Any] | None:
        return self.history[-1] if self.history else None


def _loader(
    ds: Any,
    *,
    batch_size: int,
    sampler: Any = None,
    num_workers: int,
    collate_fn: Any,
    drop_last: bool,
    seed: int,
    pin: bool,
) -> torch.utils.data.DataLoader:
    # A private generator: creating an iterator must not consume the global torch RNG (exact resume).
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def classification_eval(
    val_set: Any, *, batch_size: int, num_workers: int = 0, amp_dtype: torch.dtype | None = None
) -> Callable[[nn.Module, torch.device], dict[str, Any]]:
    """An ``eval_fn`` for fit: loss/top1/top5 of ``model`` over a dataset of (tensor, label)."""

    def run(model: nn.Module, device: torch.device) -> dict[str, Any]:
        loader = _loader(
            val_set,
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=None,
            drop_last=False,
            seed=0,
            pin=device.type == "cuda",
        )
        return evaluate(model, loader, device, amp_dtype=amp_dtype)

    return run


def fit(
    model: nn.Module,
    *,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train_set: Any,
    run_dir: str | Path,
    settings: FitSettings,
    dist: DistInfo,
    make_card: Callable[[dict[str, Any]], ModelCard],
    config: dict[str, Any],
    eval_fn: Callable[[nn.Module, torch.device], dict[str, Any]] | None = None,
    save_module: nn.Module | None = None,
    collate_fn: Callable | None = None,
    resume: bool = False,
) -> FitResult:
    """Train ``model`` for ``settings.epochs`` epochs; returns the per-epoch history and the best record.

    - ``loss_fn(model, batch) -> {"loss": scalar, ...}`` with ``batch`` what the loader yields, on the device;
      ``model`` is the DDP-wrapped module under torchrun.
    - ``optimizer`` over ``model``'s parameters (param groups may carry ``lr_scale``); its lr is overwritten
      per update with warm-up + cosine from ``settings``.
    - ``train_set`` yields samples already transformed (e.g. ``TransformDataset``); it is wrapped in
      ``SeededDataset`` so augmentation is reproducible.
    - ``eval_fn(plain_model, device) -> dict`` runs on rank 0 after each epoch (e.g. ``classification_eval``);
      its keys appear in metrics.jsonl as ``val_<key>``; ``settings.best_metric`` picks RUN/best.
    - ``make_card(val_metrics) -> ModelCard`` describes ``save_module`` (default: ``model``), the module whose
      weights go into model.safetensors; fit stores ``config`` into ``card.training["config"]``.
    - ``resume=True`` continues from RUN/last (error if there is none).
    """
    run_dir = Path(run_dir)
    device = dist.device
    model.to(device)
    plain = unwrap(model)
    save_module = save_module if save_module is not None else plain
    state_includes_model = save_module is not plain
    amp_dtype = resolve_amp(settings.amp, device)
    scaler = make_scaler(amp_dtype, device)
    bs, accum = settings.batch_size, settings.accum_steps

    seeded = SeededDataset(train_set, settings.seed)
    sampler = ResumableSampler(
        seeded, rank=dist.rank, world_size=dist.world_size, shuffle=True, seed=settings.seed, drop_last=True
    )
    batches_per_epoch = sampler.num_samples // bs
    updates_per_epoch = batches_per_epoch // accum
    if updates_per_epoch == 0:
        raise DataError(
            f"{len(train_set)} training images give no full update of batch {bs} x accum {accum} x {dist.world_size} "
            "process(es); lower --batch-size or --accum-steps, or add data"
        )
    total_steps = updates_per_epoch * settings.epochs
    warmup_steps = int(round(settings.warmup_epochs * updates_per_epoch))
    lr_fn = partial(
        cosine_lr, base_lr=settings.lr, total_steps=total_steps, warmup_steps=warmup_steps, min_lr=settings.min_lr
    )

    pos = {"epoch": 0, "batch": 0, "step": 0, "meters": {}}
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    if resume:
        pos, history, best = _restore(run_dir, plain, save_module, state_includes_model, optimizer, scaler, dist)
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text("")
    if dist.is_main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _truncate_metrics(run_dir, pos["epoch"])
    if not resume and dist.distributed:
        torch.manual_seed(settings.seed + 1000 * dist.rank)  # different drop-path masks per rank

    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=settings.find_unused_parameters,
        )

    last_val: dict[str, Any] = history[-1].get("_val", {}) if history else {}

    def card_for(val: dict[str, Any]) -> ModelCard:
        card = make_card(val)
        return card.replace(training={**card.training, "config": config})

    def save_last(epoch: int, batch: int, step: int, meters: dict[str, float]) -> None:
        rngs = _gather_rng(dist)
        if not dist.is_main:
            return
        state = {
            "version": STATE_VERSION,
            "epoch": epoch,
            "batch": batch,
            "step": step,
            "meters": dict(meters),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rngs,
            "config": config,
            "history": history,
            "best": best,
            "world_size": dist.world_size,
            "batch_size": bs,
            "accum_steps": accum,
        }
        if state_includes_model:
            state["model"] = {k: v.detach().cpu() for k, v in plain.state_dict().items()}
        save_checkpoint(run_dir / "last", save_module, card_for(last_val), state)

    for epoch in range(pos["epoch"], settings.epochs):
        start_batch = pos["batch"] if epoch == pos["epoch"] else 0
        meters = pos["meters"] if epoch == pos["epoch"] else {}
        sampler.set_position(epoch, start_batch * bs)
        seeded.epoch = epoch
        loader = _loader(
            seeded,
            batch_size=bs,
            sampler=sampler,
            num_workers=settings.num_workers,
            collate_fn=collate_fn,
            drop_last=True,
            seed=settings.seed,
            pin=device.type == "cuda",
        )

        def on_update(step: int, batches_done: int, m: dict[str, float], _epoch: int = epoch) -> None:
            every = settings.checkpoint_every_steps
            if every and step % every == 0 and batches_done < updates_per_epoch * accum:
                save_last(_epoch, batches_done, step, m)

        t0 = time.perf_counter()
        stats = train_one_epoch(
            model,
            loader,
            optimizer,
            loss_fn,
            device=device,
            epoch=epoch,
            lr_fn=lr_fn,
            start_step=pos["step"],
            num_updates=updates_per_epoch,
            start_batch=start_batch,
            accum_steps=accum,
            clip_grad=settings.clip_grad,
            amp_dtype=amp_dtype,
            scaler=scaler,
            meters=meters,
            on_update=on_update,
            progress=settings.progress and dist.is_main,
        )
        stats = _average_across_ranks(stats, dist)
        pos = {"epoch": epoch + 1, "batch": 0, "step": int(stats["step"]), "meters": {}}
        val: dict[str, Any] = {}
        if eval_fn is not None and dist.is_main:
            val = {k: v for k, v in eval_fn(plain, device).items() if isinstance(v, (int, float))}
        record = {
            "epoch": epoch,
            "step": pos["step"],
            **{f"train_{k}": v for k, v in stats.items() if k not in ("step", "lr", "img_per_s", "train_time_s")},
            "lr": stats["lr"],
            "img_per_s": stats["img_per_s"] * dist.world_size,
            "epoch_time_s": time.perf_counter() - t0,
            **{f"val_{k}": v for k, v in val.items()},
        }
        last_val = val
        history.append({**record, "_val": val})
        metric = settings.best_metric
        is_best = bool(metric and metric in val and (best is None or val[metric] > best[f"val_{metric}"]))
        if is_best:
            best = record
        if metric and best is not None:
            since = epoch - best["epoch"]
            record.update({f"best_val_{metric}": best[f"val_{metric}"], "best_epoch": best["epoch"]})
            record["epochs_since_best"] = since
            if since == settings.patience and dist.is_main:
                log.warning(
                    "validation %s has not improved for %d epochs (best %.4g at epoch %d): best/ keeps that "
                    "checkpoint; more epochs only pay if it improves again",
                    metric,
                    since,
                    best[f"val_{metric}"],
                    best["epoch"] + 1,
                )
        if dist.is_main:
            _log_epoch(record, settings.epochs)
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            _plot(run_dir, history)
            if is_best:
                save_checkpoint(run_dir / "best", save_module, card_for(val), None)
        save_last(epoch + 1, 0, pos["step"], {})
        barrier(dist)
    if dist.is_main and settings.best_metric and best is not None and history:
        _log_best(history[-1], best, settings.best_metric, settings.epochs)
    return FitResult(run_dir=run_dir, history=[_public(h) for h in history], best=best)


def _log_best(last: dict[str, Any], best: dict[str, Any], metric: str, epochs: int) -> None:
    """The run's last line: the best epoch (what best/ holds) against the last one."""
    key = f"val_{metric}"
    if best["epoch"] == last["epoch"]:
        log.info("best validation %s %.4g at the last epoch (%d); best/ = last/", metric, best[key], epochs)
        return
    log.info(
        "best validation %s %.4g at epoch %d of %d (last epoch: %.4g); best/ holds epoch %d. Validation stopped "
        "improving after epoch %d: fewer epochs would have done, or stronger augmentation may let more epochs pay",
        metric,
        best[key],
        best["epoch"] + 1,
        epochs,
        last.get(key, float("nan")),
        best["epoch"] + 1,
        best["epoch"] + 1,
    )


class _LazyFileHandler(logging.FileHandler):
    """Appends to ``path``, creating it (and its folder) only at the first record: a run refused before it
    logged anything leaves no folder behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self):  # noqa: ANN202 - logging's own signature
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextlib.contextmanager
def run_log(run_dir: str | Path, dist: DistInfo) -> Iterator[Path]:
    """Copy this package's log records into RUN/train.log (rank 0; appended to when a run resumes)."""
    path = Path(run_dir) / "train.log"
    if not dist.is_main:
        yield path
        return
    handler = _LazyFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("compress")
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def _public(h: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in h.items() if not k.startswith("_")}


def _log_epoch(r: dict[str, Any], epochs: int) -> None:
    val = " ".join(f"{k}={v:.4g}" for k, v in r.items() if k.startswith("val_"))
    log.info(
        "epoch %d/%d  train_loss=%.4f  %s  lr=%.3g  %.0f img/s",
        r["epoch"] + 1,
        epochs,
        r.get("train_loss", float("nan")),
        val,
        r["lr"],
        r["img_per_s"],
    )


def _plot(run_dir: Path, history: list[dict[str, Any]]) -> None:
    try:
        plot_curves(history, run_dir / "curves.png")
    except Exception as err:  # noqa: BLE001 - a plotting failure must not stop training
        log.warning("could not draw curves.png: %s", err)


def _truncate_metrics(run_dir: Path, epoch: int) -> None:
    """Drop metric lines of epochs >= ``epoch`` (written before a crash, redone after resume)."""
    p = run_dir / "metrics.jsonl"
    if not p.is_file():
        return
    lines = [ln for ln in p.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] < epoch]
    p.write_text("".join(ln + "\n" for ln in lines))


def _gather_rng(dist: DistInfo) -> list[dict[str, Any]]:
    state = rng_state()
    if not dist.distributed:
        return [state]
    import torch.distributed as tdist

    out: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(out, state)
    return out


def _average_across_ranks(stats: dict[str, float], dist: DistInfo) -> dict[str, float]:
    if not dist.distributed:
        return stats
    import torch.distributed as tdist

    keys = sorted(k for k in stats if k not in ("step", "lr", "img_per_s", "train_time_s"))
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
    tdist.all_reduce(t)
    return {**stats, **{k: float(v) / dist.world_size for k, v in zip(keys, t, strict=True)}}


def _restore(
    run_dir: Path,
    plain: nn.Module,
    save_module: nn.Module,
    state_includes_model: bool,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    dist: DistInfo,
) -> tuple[dict, list, Any]:
    ckpt = find_resume_dir(run_dir)
    if ckpt is None:
        raise CheckpointError(f"nothing to resume in {run_dir}: no last/ checkpoint with a resume state")
    state = load_state(ckpt)
    if state.get("world_size", 1) != dist.world_size:
        log.warning(
            "resuming a run saved with %s process(es) on %d: the sample order changes",
            state.get("world_size"),
            dist.world_size,
        )
    if state_includes_model:
        plain.load_state_dict(state["model"])
    else:
        load_weights(save_module, read_state_dict(ckpt / WEIGHTS_FILE), strict_arch=True)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    set_rng_state(rngs[dist.rank] if dist.rank < len(rngs) else rngs[0])
    log.info("resumed %s at epoch %d, batch %d (update %d)", ckpt, state["epoch"], state["batch"], state["step"])
    pos = {k: state[k] for k in ("epoch", "batch", "step", "meters")}
    return pos, list(state.get("history", [])), state.get("best")
