"""Distillation runs: ``run_distill`` (one run or a chain of stages) and ``distill_once`` (load and check
everything, then hand the pieces to ``compress.runner.fit``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from compress.checkpoint import find_resume_dir
from compress.data import TransformDataset, build_datasets, eval_transform, is_labelled
from compress.distill.config import DistillConfig, stage_configs
from compress.distill.errors import DistillError
from compress.distill.preflight import check_methods_against_data, check_methods_against_teacher
from compress.distill.schedule import build_optimizer, scaled_lr
from compress.distill.setup import build_distillation
from compress.distill.teacher_loading import load_configured_teacher
from compress.distill.transforms import TwoViewTransform
from compress.distributed import init_distributed, seed_everything
from compress.engine import resolve_amp
from compress.losses import parse_methods
from compress.lr_range import RANGE_PNG, auto_lr
from compress.models import create_model, resolve_arch
from compress.runner import FitSettings, classification_eval, fit
from tinymim.card import ModelCard, Preprocess
from tinymim.configio import config_to_dict

log = logging.getLogger(__name__)


def patch_size_of(model: Any) -> int | None:
    """The patch side of a timm ViT (None for models without a patch embedding)."""
    pe = getattr(model, "patch_embed", None)
    size = getattr(pe, "patch_size", None)
    if size is None:
        return None
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def run_distill(cfg: DistillConfig) -> Path:
    """Run the distillation (or each stage of a chain); returns the final student's run folder."""
    run_dir = Path(cfg.output)
    stages = stage_configs(cfg)
    for i, stage in enumerate(stages, 1):
        if len(stages) > 1 and stage.resume and find_resume_dir(stage.output) is None:
            log.info("chain stage %d (%s) has not started yet: starting it", i, stage.output)
            stage = dataclasses.replace(stage, resume=False)
        run_dir = distill_once(stage)
    return run_dir


def distill_once(cfg: DistillConfig) -> Path:
    """Distil ``cfg.teacher`` into a new student; returns the run folder (student in last/, card inside)."""
    run_dir = Path(cfg.output)
    if cfg.resume and find_resume_dir(run_dir) is None:
        raise DistillError(f"--resume: {run_dir} holds no resume state (last/state.pt); start without --resume")
    if not cfg.resume and find_resume_dir(run_dir) is not None:
        raise DistillError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
    dist = init_distributed(cfg.device)
    seed_everything(cfg.seed)
    methods = parse_methods(cfg.method)

    teacher = load_configured_teacher(cfg)
    options = {"logits": {"temperature": cfg.temperature, "alpha": cfg.alpha}, "logits_hard": {"alpha": cfg.alpha}}
    check_methods_against_teacher(methods, teacher=teacher)
    labelled = is_labelled(cfg.data)
    check_methods_against_data(
        methods, options=options, labelled=labelled, data=cfg.data, teacher_labels=teacher.labels
    )
    t_pre = teacher.preprocess
    chans = t_pre.channels
    bundle = build_datasets(
        cfg.data,
        val_split=cfg.val_split,
        strict=cfg.strict_data,
        in_chans=chans,
        limit_train=cfg.limit_train,
        limit_val=cfg.limit_val,
        seed=cfg.seed,
        allow_unlabelled=True,
    )
    trains_head = any(m.startswith("logits") for m, _ in methods)
    # Unlabelled data: a student that learns the teacher's scores takes the teacher's classes; else no head.
    classes = tuple(bundle.classes) if bundle.labelled else tuple(teacher.labels or ()) if trains_head else ()
    if (
        bundle.labelled
        and teacher.labels is not None
        and teacher.is_classifier
        and trains_head
        and tuple(teacher.labels) != tuple(bundle.classes)
    ):
        raise DistillError(
            f"the teacher's labels {list(teacher.labels)} differ from the data's "
            f"{list(bundle.classes)}; "
            "logit distillation needs the same classes in the same order"
        )
    img = cfg.student_img_size or t_pre.image_size
    patch = cfg.student_patch_size or patch_size_of(teacher.model)
    student, arch_kwargs = create_model(
        cfg.student,
        num_classes=len(classes),
        img_size=img,
        in_chans=chans,
        patch_size=patch,
        depth=cfg.student_depth,
        num_heads=cfg.student_num_heads,
        embed_dim=cfg.student_embed_dim,
    )
    s_mean = tuple(cfg.student_mean or bundle.mean)
    s_std = tuple(cfg.student_std or bundle.std)
    s_pre = Preprocess((chans, img, img), s_mean, s_std, "bicubic", bundle.crop_pct)

    d = build_distillation(
        teacher.model,
        student,
        methods,
        teacher_is_classifier=teacher.is_classifier,
        num_classes=len(classes),
        teacher_block=cfg.teacher_block,
        drop_path=cfg.drop_path,
        method_options=options,
        last_block_init=cfg.last_block_init,
    )
    d.report.update(teacher=teacher.source, teacher_preprocess=t_pre.to_dict(), student_preprocess=s_pre.to_dict())
    log.info(
        "distilling %s -> %s with %s; teacher block %s of %s; %s",
        teacher.source,
        cfg.student,
        cfg.method,
        d.report["teacher_block"],
        d.report["teacher_blocks"],
        d.freeze.summary(),
    )

    transform = TwoViewTransform(
        t_pre,
        s_pre,
        scale=(cfg.crop_scale_min, 1.0),
        color_jitter=cfg.color_jitter,
    )
    train_set = TransformDataset(bundle.train, transform)
    batch = cfg.batch_size * dist.world_size
    lr = scaled_lr(cfg.base_lr, batch) if cfg.lr in (None, "auto") else float(cfg.lr)
    optimizer = build_optimizer(d.module, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.lr == "auto":
        d.teacher.to(dist.device)
        lr = auto_lr(
            run_dir,
            d.module.to(dist.device),
            d.loss_fn,
            optimizer,
            train_set,
            batch_size=cfg.batch_size,
            effective_batch=batch,
            seed=cfg.seed,
            dist=dist,
            amp_dtype=resolve_amp(cfg.amp, dist.device),
            num_workers=cfg.num_workers,
            resume=cfg.resume,
        )
        log.info("--lr auto: distilling with peak lr %.3g (range test: %s)", lr, run_dir / RANGE_PNG)
    settings = FitSettings(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=lr,
        warmup_epochs=cfg.warmup,
        amp=cfg.amp,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        checkpoint_every_steps=cfg.checkpoint_every_steps,
        best_metric="top1" if trains_head and bundle.labelled else None,
        progress=cfg.progress,
    )
    eval_fn: Any = None
    if trains_head and bundle.labelled:
        student_eval = classification_eval(
            TransformDataset(bundle.val, eval_transform(s_pre)), batch_size=cfg.batch_size
        )

        def rate_student(module: Any, device: Any) -> dict[str, Any]:  # fit passes the DistillModule
            return student_eval(module.student, device)

        eval_fn = rate_student
    config = config_to_dict(cfg)
    arch = resolve_arch(cfg.student)

    def make_card(val: dict[str, Any]) -> ModelCard:
        return ModelCard(
            arch=arch,
            arch_kwargs=arch_kwargs,
            preprocess=s_pre,
            labels=classes,
            task="classifier" if trains_head else "backbone",
            distilled_block_heads=d.report.get("distilled_block_heads"),
            data=dict(bundle.source_info),
            metrics={f"val_{k}": v for k, v in val.items()},
            training={"command": "distill", "teacher": teacher.source, "distill": _jsonable(d.report)},
        )

    d.teacher.to(dist.device)
    result = fit(
        d.module,
        loss_fn=d.loss_fn,
        optimizer=optimizer,
        train_set=train_set,
        run_dir=run_dir,
        settings=settings,
        dist=dist,
        make_card=make_card,
        config=config,
        eval_fn=eval_fn,
        save_module=d.student,
        resume=cfg.resume,
    )
    return result.run_dir


def _jsonable(report: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(report, default=str))
