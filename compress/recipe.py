"""What ``tinymim train`` runs: data, the recipe (``compress.train_recipes``), model, optimizer, loss, ``fit``."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress.checkpoint import find_resume_dir, read_state_dict, resolve_checkpoint
from compress.data import DataBundle, TransformDataset, build_datasets, build_mixup, eval_transform, train_transform
from compress.distributed import DistInfo, init_distributed, seed_everything
from compress.engine import resolve_amp
from compress.errors import CheckpointError, ModelError
from compress.lr_range import RANGE_PNG, auto_lr
from compress.models import create_model, load_weights, resolve_arch
from compress.runner import FitSettings, classification_eval, fit, run_log
from compress.train_config import TrainConfig
from compress.train_recipes import DataFacts, Recipe, choose_recipe
from tinymim.card import ModelCard, Preprocess, adapt_channels, normalisation_problem
from tinymim.configio import build_config, config_to_dict

log = logging.getLogger(__name__)


def default_patch(arch_patch: int, img_size: int) -> int:
    """The arch's patch if it divides ``img_size`` and leaves >= 7x7 tokens, else the largest of 8/7/4/2 dividing it."""
    if img_size % arch_patch == 0 and img_size // arch_patch >= 7:
        return arch_patch
    for p in (8, 7, 4, 2):
        if img_size % p == 0 and img_size // p >= 4:
            return p
    return 1


def _arch_patch(arch: str) -> int:
    import re

    m = re.search(r"patch(\d+)", arch)
    return int(m.group(1)) if m else 16


def build_classifier(
    cfg: TrainConfig, data: DataBundle, init_card: ModelCard | None
) -> tuple[nn.Module, dict[str, Any], str]:
    """The model to train: from ``init_card``'s architecture (normal head count, task classifier) or ``cfg``."""

    # No --arch: the --init checkpoint's architecture, else ViT-Tiny. The card stores the full timm name.
    arch = resolve_arch(cfg.arch or (init_card.arch if init_card is not None else "vit_tiny"))
    base = dict(init_card.arch_kwargs) if init_card is not None else {}
    base.pop("num_classes", None)
    base.pop("global_pool", None)
    in_chans = data.channels
    base.pop("in_chans", None)
    img_size = input_side(cfg, data, init_card)
    base.pop("img_size", None)
    overrides = {k: getattr(cfg, k) for k in ("patch_size", "depth", "num_heads", "embed_dim") if getattr(cfg, k)}
    base.update(overrides)
    if "patch_size" not in base:
        base["patch_size"] = default_patch(_arch_patch(arch), img_size)
    model, arch_kwargs = create_model(
        arch,
        num_classes=len(data.classes),
        img_size=img_size,
        in_chans=in_chans,
        drop_path_rate=cfg.drop_path,
        global_pool="avg",
        **base,
    )
    return model, arch_kwargs, arch


def _read_init(path: str) -> tuple[dict[str, torch.Tensor], ModelCard | None]:
    weights = resolve_checkpoint(path)
    card_file = weights.parent / "card.json"
    card = ModelCard.load(card_file) if card_file.is_file() else None
    return read_state_dict(weights), card


def classification_loss(mixup: Any, label_smoothing: float) -> Callable[[nn.Module, Any], dict[str, torch.Tensor]]:
    """loss_fn for fit: Mixup/CutMix (timm) + soft-target CE, else label-smoothing CE, else plain CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup is not None:
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif label_smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing=label_smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    def loss_fn(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, targets = batch
        if mixup is not None:
            images, targets = mixup(images, targets)
        return {"loss": criterion(model(images), targets)}

    return loss_fn


def _run_dir(cfg: TrainConfig, dist: DistInfo) -> Path:
    if cfg.resume:
        if find_resume_dir(cfg.resume) is None:
            raise CheckpointError(f"nothing to resume in {cfg.resume}: no last/ checkpoint with a resume state")
        return Path(cfg.resume)
    name = cfg.output or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}"
    if dist.distributed:  # every rank must use rank 0's name
        import torch.distributed as tdist

        box = [name]
        tdist.broadcast_object_list(box, src=0)
        name = box[0]
    path = Path(name)
    if (path / "last").exists():
        raise CheckpointError(
            f"run folder {path} already holds a run; continue it with --resume {path} or pick another --output"
        )
    return path


def input_side(cfg: TrainConfig, data: DataBundle, init_card: ModelCard | None) -> int:
    """Image side the model sees: --img-size, else the --init checkpoint's, else the data's native size, else 224."""
    init_size = init_card.arch_kwargs.get("img_size") if init_card is not None else None
    return int(cfg.img_size or init_size or data.native_size or 224)


def resolve_recipe(cfg: TrainConfig, data: DataBundle, img_size: int, world_size: int) -> tuple[TrainConfig, Recipe]:
    """``cfg`` with every value the recipe chose filled in (validated again), and the recipe itself."""
    facts = DataFacts(
        train_images=len(data.train),
        classes=len(data.classes),
        img_size=img_size,
        epochs=cfg.epochs,
        batch=cfg.batch_size * cfg.accum_steps * world_size,
    )
    recipe = choose_recipe(cfg, facts)
    resolved = build_config(TrainConfig, {**dataclasses.asdict(cfg), **recipe.values})
    return resolved, recipe


def train_classifier(cfg: TrainConfig) -> Path:
    """Run ``cfg`` end to end (what ``tinymim train`` runs); returns the run folder (best/ and last/ inside).

    The recipe (``compress.train_recipes``: from-scratch without ``init``, fine-tune with it) fills every
    value ``cfg`` leaves open; the first line of the log (and of RUN/train.log) names it and every value.
    """
    dist = init_distributed(cfg.device)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    run_dir = _run_dir(cfg, dist)
    with run_log(run_dir, dist):
        _train(cfg, dist, run_dir)
    return run_dir


def _train(cfg: TrainConfig, dist: DistInfo, run_dir: Path) -> None:
    init_sd, init_card = _read_init(cfg.init) if cfg.init else (None, None)
    in_chans = cfg.in_chans
    if in_chans is None and init_card is not None and "in_chans" in init_card.arch_kwargs:
        in_chans = int(init_card.arch_kwargs["in_chans"])  # fine-tuning keeps the checkpoint's channels
    data = build_datasets(
        cfg.data,
        val_split=cfg.val_split,
        strict=cfg.strict_data,
        in_chans=in_chans,
        limit_train=cfg.limit_train,
        limit_val=cfg.limit_val,
        seed=cfg.seed,
    )
    given = config_to_dict(cfg)  # config.yaml: what was asked (None = the recipe's), so --resume re-derives the same
    cfg, recipe = resolve_recipe(cfg, data, input_side(cfg, data, init_card), dist.world_size)
    eff_batch = recipe.facts.batch
    base_lr = cfg.base_lr * eff_batch / 256
    log.info("%s", recipe.describe(cfg.lr if cfg.lr is not None else base_lr, cfg.augment))
    model, arch_kwargs, arch = build_classifier(cfg, data, init_card)
    if init_sd is not None:
        report = load_weights(model, init_sd, strict_arch=True)
        log.info("initialised from %s (%s)", cfg.init, ", ".join(k for k, v in report.items() if v) or "exact fit")
    pre = training_preprocess(
        cfg, data, init_card.preprocess if init_card else None, arch_kwargs["in_chans"], arch_kwargs["img_size"]
    )
    train_set = TransformDataset(data.train, training_transform(cfg, pre))
    mixup = build_mixup(cfg.mixup, cfg.cutmix, cfg.label_smoothing, len(data.classes)) if cfg.uses_mixup else None
    loss_fn = classification_loss(mixup, cfg.label_smoothing if cfg.augment else 0.0)
    lr_auto = cfg.lr_auto
    lr = base_lr if cfg.lr is None or lr_auto else cfg.lr
    optimizer = _optimizer(model, lr=lr, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
    amp_dtype = resolve_amp(cfg.amp, dist.device)
    if lr_auto:
        lr = auto_lr(
            run_dir,
            model.to(dist.device),
            loss_fn,
            optimizer,
            train_set,
            batch_size=cfg.batch_size,
            effective_batch=eff_batch,
            seed=cfg.seed,
            dist=dist,
            amp_dtype=amp_dtype,
            num_workers=cfg.num_workers,
            resume=bool(cfg.resume),
        )
        log.info("--lr auto: training with peak lr %.3g (range test: %s)", lr, run_dir / RANGE_PNG)
    settings = FitSettings(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=lr,
        min_lr=cfg.min_lr,
        warmup_epochs=cfg.warmup_epochs,
        accum_steps=cfg.accum_steps,
        clip_grad=cfg.clip_grad,
        amp=cfg.amp,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        checkpoint_every_steps=cfg.checkpoint_every_steps,
        best_metric="top1",
        progress=cfg.progress,
    )
    training = {
        "command": "train",
        "parents": [str(cfg.init)] if cfg.init else [],
        "effective_batch": eff_batch,
        "lr": lr,
        "recipe": {**recipe.to_dict(), "lr_auto": lr_auto},
    }

    def make_card(val: dict[str, Any]) -> ModelCard:
        return ModelCard(
            arch=arch,
            arch_kwargs=arch_kwargs,
            preprocess=pre,
            labels=tuple(data.classes),
            task="classifier",
            data=dict(data.source_info),
            metrics={k: val[k] for k in ("top1", "top5", "loss", "n") if k in val},
            training=training,
        )

    eval_fn = classification_eval(
        TransformDataset(data.val, eval_transform(pre)),
        batch_size=cfg.eval_batch_size or 2 * cfg.batch_size,
        num_workers=cfg.num_workers,
        amp_dtype=amp_dtype,
    )
    log.info(
        "training %s %s on %d images (%d classes), val %d; lr %.3g for batch %d",
        arch,
        {k: v for k, v in arch_kwargs.items() if k != "global_pool"},
        len(data.train),
        len(data.classes),
        len(data.val),
        lr,
        eff_batch,
    )
    fit(
        model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        train_set=train_set,
        run_dir=run_dir,
        settings=settings,
        dist=dist,
        make_card=make_card,
        config=given,
        eval_fn=eval_fn,
        resume=bool(cfg.resume),
    )


def training_transform(cfg: TrainConfig, pre: Preprocess) -> Callable[[Any], Any]:
    """timm's training pipeline with the recipe's values; the card's eval transform when nothing is drawn at
    random (--no-augment, or the recipe's level 0: whole image, no flip, no RandAugment, no erasing)."""
    still = (
        cfg.crop_scale_min == 1.0 and cfg.hflip == 0 and cfg.rand_augment.lower() == "none" and not cfg.random_erasing
    )
    if not cfg.augment or still:
        return eval_transform(pre)
    return train_transform(
        pre,
        rand_augment=None if cfg.rand_augment.lower() == "none" else cfg.rand_augment,
        random_erasing=cfg.random_erasing,
        hflip=cfg.hflip,
        crop_scale=(cfg.crop_scale_min, 1.0),
    )


def training_preprocess(
    cfg: TrainConfig, data: DataBundle, init: Preprocess | None, channels: int, img_size: int
) -> Preprocess:
    """The preprocessing the card will carry: a flag wins; else the ``--init`` card's (a fine-tuned model keeps
    the normalisation, crop and interpolation it learnt with, e.g. a student distilled with --student-mean);
    else the data's statistics, crop_pct 1.0 for data of a known native size (0.875 otherwise), bicubic."""
    if cfg.mean is not None and cfg.std is not None:
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    else:
        source = init if init is not None else data
        mean, std = adapt_channels(source.mean, channels), adapt_channels(source.std, channels)
    problem = normalisation_problem(mean, std, channels)
    if problem:
        raise ModelError(f"the model has {channels} input channels: {problem}")
    if cfg.crop_pct is not None:
        crop_pct = cfg.crop_pct
    elif init is not None:
        crop_pct = init.crop_pct
    else:
        crop_pct = data.crop_pct
    interpolation = cfg.interpolation or (init.interpolation if init is not None else "bicubic")
    return Preprocess((channels, img_size, img_size), mean, std, interpolation, crop_pct)


def _optimizer(model: nn.Module, *, lr: float, weight_decay: float, layer_decay: float) -> torch.optim.Optimizer:
    """timm AdamW with layer-wise lr decay (``lr_scale`` per group) and no decay on 1-D params / no_weight_decay()."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(
        model,
        opt="adamw",
        lr=lr,
        weight_decay=weight_decay,
        layer_decay=layer_decay if layer_decay < 1 else None,
        betas=(0.9, 0.999),
    )
