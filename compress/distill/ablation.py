"""The label-scarce ablation behind ``tinymim ablate`` (docs/METHOD.md section 5).

Plan: for each seed, each distillation arm is distilled once on the whole pool (``budget`` epochs, labels
unused: the logits arms learn the teacher's soft labels, alpha = 1) and then fine-tuned on each labelled
subset (``tinymim train --init``); the scratch twin trains the same student on the same subset for the same
epochs, scratch_compute for as many image-steps as distillation + fine-tuning together. Every run is an
ordinary ``tinymim distill`` / ``tinymim train`` run folder under OUTPUT, so a second invocation reuses the
finished runs, resumes an interrupted one, and refuses a folder that was made with other settings.
The final score of each fine-tuned student is its top-1 on the whole validation set, after the last epoch
(no selection on the validation set).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.checkpoint import find_resume_dir, load_model
from compress.data import TransformDataset, build_datasets, eval_transform
from compress.distill.ablation_report import AblationResult, summarise, write_report
from compress.distill.config import ARMS, AblateConfig, DistillConfig, teacher_student_values
from compress.distill.errors import DistillError
from compress.distill.run import patch_size_of, run_distill
from compress.distill.teacher_loading import load_configured_teacher
from compress.engine import evaluate
from compress.models import resolve_arch
from compress.recipe import train_classifier
from compress.train_config import TrainConfig
from compress.train_recipes import AUGMENT_KEYS
from tinymim.configio import build_config, config_to_dict

log = logging.getLogger(__name__)

DISTILL_ARMS = ("logits", "feature", "cls_token", "relation", "relation+logits")
SCRATCH_ARMS = ("scratch", "scratch_compute")
LOGITS_ARMS = ("logits", "relation+logits")
# settings that do not change what a run computes (compared when an existing run folder is reused)
_IGNORED_KEYS = {"resume", "progress", "output", "checkpoint_every_steps", "num_workers", "device"}


@dataclass(frozen=True)
class Setting:
    """What the plan needs to know before any run: the student's geometry, sizes, the teacher's kind."""

    student: dict[str, Any]  # arch, img_size, patch_size, depth, num_heads, embed_dim, in_chans, mean, std
    pool_size: int
    labelled_sizes: tuple[int, ...]
    teacher_is_classifier: bool
    teacher_top1: float | None


@dataclass(frozen=True)
class Run:
    """One training run of the plan: a distillation (``labelled`` None) or a fine-tune / scratch run."""

    kind: str  # "distill" or "train"
    arm: str
    seed: int
    labelled: int | None
    values: dict[str, Any]  # of a DistillConfig or a TrainConfig
    epochs: int

    @property
    def run_dir(self) -> Path:
        return Path(self.values["output"])

    @property
    def config(self) -> Any:
        """The validated config (built when needed: a fine-tune's --init exists only after its distillation)."""
        return build_config(DistillConfig if self.kind == "distill" else TrainConfig, self.values)


def arms_for(cfg: AblateConfig, teacher_is_classifier: bool) -> list[str]:
    """The arms to run: as asked, or all of them (the logits arms only with a classifier teacher)."""
    if cfg.methods:
        bad = [a for a in cfg.methods if a in LOGITS_ARMS and not teacher_is_classifier]
        if bad:
            raise DistillError(
                f"arms {bad} distil the teacher's class scores, but the teacher has no classifier head for the "
                "labelled data's classes; drop them from --methods"
            )
        return list(cfg.methods)
    return [a for a in ARMS if teacher_is_classifier or a not in LOGITS_ARMS]


def _method_spec(arm: str, cfg: AblateConfig) -> str:
    return f"relation:1,logits:{cfg.logits_weight:g}" if arm == "relation+logits" else arm


def _subset_dir(n: int) -> str:
    return f"n{n}"


def plan(cfg: AblateConfig, setting: Setting) -> list[Run]:
    """Every run, seed by seed (a first seed of every arm finishes before the second starts)."""
    out = Path(cfg.output)
    arms = arms_for(cfg, setting.teacher_is_classifier)
    runs: list[Run] = []
    for seed in cfg.seeds:
        for arm in arms:
            pre_dir = out / "pretrain" / arm.replace("+", "_") / f"seed{seed}"
            if arm in DISTILL_ARMS:
                values = _distill_values(cfg, arm, seed, pre_dir)
                build_config(DistillConfig, values)  # every setting is checked before the first run
                runs.append(Run("distill", arm, seed, None, values, cfg.budget))
            for i, n in enumerate(setting.labelled_sizes):
                run_dir = out / _subset_dir(n) / arm.replace("+", "_") / f"seed{seed}"
                epochs = ft_epochs = cfg.finetune_epochs_for(i)
                if arm == "scratch_compute":
                    epochs = math.ceil((cfg.budget * setting.pool_size + ft_epochs * n) / n)
                values = _train_values(cfg, arm, seed, n, epochs, run_dir, pre_dir, setting)
                build_config(TrainConfig, {**values, "init": None})
                runs.append(Run("train", arm, seed, n, values, epochs))
    return runs


def _distill_values(cfg: AblateConfig, arm: str, seed: int, run_dir: Path) -> dict[str, Any]:
    return dict(
        teacher_student_values(cfg),
        data=cfg.data,
        val_split=cfg.val_split,
        limit_train=cfg.pool_limit,
        limit_val=cfg.limit_val,
        method=_method_spec(arm, cfg),
        alpha=1.0,  # the pool's labels are never used: the logits arms learn the teacher's soft labels
        temperature=cfg.temperature,
        epochs=cfg.budget,
        batch_size=cfg.batch_size,
        base_lr=cfg.distill_base_lr,
        crop_scale_min=cfg.crop_scale_min,
        last_block_init=cfg.last_block_init,
        amp=cfg.amp,
        device=cfg.device,
        seed=seed,
        checkpoint_every_steps=100,
        progress=cfg.progress,
        output=str(run_dir),
    )


def _train_values(
    cfg: AblateConfig,
    arm: str,
    seed: int,
    n: int,
    epochs: int,
    run_dir: Path,
    pre_dir: Path,
    setting: Setting,
) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        data=cfg.labelled_data or cfg.data,
        val_split=cfg.val_split,
        limit_train=n,
        limit_val=cfg.limit_val,
        epochs=epochs,
        batch_size=cfg.finetune_batch_size,
        augment=cfg.finetune_augment,
        amp=cfg.amp,
        device=cfg.device,
        seed=seed,
        checkpoint_every_steps=200,
        progress=cfg.progress,
        output=str(run_dir),
    )
    if arm in SCRATCH_ARMS:
        values.update(setting.student, base_lr=cfg.scratch_base_lr, layer_decay=1.0)
    else:
        values.update(init=str(pre_dir), base_lr=cfg.finetune_base_lr, layer_decay=cfg.finetune_layer_decay)
    for item in cfg.train_overrides:
        key, _, value = item.partition("=")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


# ------------------------------------------------------------------------------------------------ execution


def _records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def is_done(run: Run) -> bool:
    return len(_records(run.run_dir)) >= run.epochs and (run.run_dir / "last").is_dir()


def _check_same_settings(run: Run) -> None:
    """A run folder made with other settings is never silently reused."""
    import yaml

    saved_file = run.run_dir / "config.yaml"
    if not saved_file.is_file():
        return
    saved = yaml.safe_load(saved_file.read_text()) or {}
    wanted = json.loads(json.dumps(config_to_dict(run.config)))
    ignored = set(_IGNORED_KEYS)
    if saved.get("augment") is False and wanted.get("augment") is False:
        ignored |= set(AUGMENT_KEYS)  # switched off by augment: false, whatever their values say
    diff = sorted(k for k in set(saved) | set(wanted) if k not in ignored and saved.get(k) != wanted.get(k))
    if diff:
        raise DistillError(
            f"{run.run_dir} was made with other settings ({', '.join(diff)}); choose another --output or "
            "delete that folder to rerun it"
        )


def execute(run: Run) -> None:
    """Run, resume or reuse one run of the plan."""
    import dataclasses

    _check_same_settings(run)
    if is_done(run):
        return
    resumable = find_resume_dir(run.run_dir) is not None
    log.info(
        "ablation: %s %s seed %d%s%s",
        "resuming" if resumable else "running",
        run.arm,
        run.seed,
        f" on {run.labelled} labelled images" if run.labelled else " on the pool",
        f" ({run.epochs} epochs)",
    )
    if run.kind == "distill":
        run_distill(dataclasses.replace(run.config, resume=resumable))
    else:
        train_classifier(dataclasses.replace(run.config, resume=str(run.run_dir) if resumable else None))


def final_top1(run: Run, labelled_data: str, val_split: float) -> float:
    """Top-1 of RUN/last on the whole validation set (cached in RUN/final_eval.json)."""
    cache = run.run_dir / "final_eval.json"
    if cache.is_file():
        return float(json.loads(cache.read_text())["top1"])
    import torch

    model, card = load_model(run.run_dir / "last")
    data = build_datasets(labelled_data, val_split=val_split, in_chans=card.preprocess.channels)
    loader = torch.utils.data.DataLoader(
        TransformDataset(data.val, eval_transform(card.preprocess)), batch_size=512, num_workers=0
    )
    result = evaluate(model, loader, torch.device("cpu"))
    cache.write_text(json.dumps({"top1": result["top1"], "n": result["n"]}))
    return float(result["top1"])


# ------------------------------------------------------------------------------------------------ setting


def describe_setting(cfg: AblateConfig) -> Setting:
    """Load the teacher and the data once: student geometry, pool size, teacher kind and accuracy."""
    import torch

    t = load_configured_teacher(cfg)
    chans = t.preprocess.channels
    pool = build_datasets(
        cfg.data, val_split=cfg.val_split, in_chans=chans, limit_train=cfg.pool_limit, allow_unlabelled=True
    )
    labelled_source = cfg.labelled_data or cfg.data
    if not pool.labelled and cfg.labelled_data is None:
        raise DistillError(
            f"--data {cfg.data} is an unlabelled folder (no class folders): it can be the distillation pool, but "
            "the ablation also fine-tunes and scores every arm on labelled images. Give them with --labelled-data "
            "(a folder of <class>/<image>, or builtin:fashion-mnist)"
        )
    labelled = build_datasets(labelled_source, val_split=cfg.val_split, in_chans=chans, allow_unlabelled=True)
    if not labelled.labelled:
        raise DistillError(
            f"--labelled-data {labelled_source} has no class folders, so there is nothing to fine-tune or score on; "
            f"give {labelled_source}/<class>/<image> (or train/<class>/ and val/<class>/)"
        )
    sizes = tuple(cfg.labelled) or (len(labelled.train),)
    too_big = [n for n in sizes if n > len(labelled.train)]
    if too_big:
        raise DistillError(
            f"labelled subsets {too_big} exceed the {len(labelled.train)} labelled training images of "
            f"{labelled_source}; lower --labelled"
        )
    num_classes = int(getattr(t.model, "num_classes", 0) or 0)
    same_classes = t.is_classifier and num_classes == len(labelled.classes)
    if same_classes and t.labels is not None:
        same_classes = tuple(t.labels) == tuple(labelled.classes)
    top1 = None
    if same_classes:
        loader = torch.utils.data.DataLoader(
            TransformDataset(labelled.val, eval_transform(t.preprocess)), batch_size=512
        )
        top1 = float(evaluate(t.model, loader, torch.device("cpu"))["top1"])
    # the scratch arms copy the distilled students' geometry and normalisation (compress.distill.run's rules)
    student = {
        "arch": resolve_arch(cfg.student),
        "img_size": cfg.student_img_size or t.preprocess.image_size,
        "patch_size": cfg.student_patch_size or patch_size_of(t.model),
        "depth": cfg.student_depth,
        "num_heads": cfg.student_num_heads,
        "embed_dim": cfg.student_embed_dim,
        "in_chans": chans,
        "mean": tuple(cfg.student_mean or pool.mean),
        "std": tuple(cfg.student_std or pool.std),
    }
    return Setting(student, len(pool.train), sizes, same_classes, top1)


def run_ablation(cfg: AblateConfig) -> AblationResult:
    """Run (or reuse) every planned run, then write OUTPUT/ablation.{md,json,png}; returns the result.

    The report is rewritten after every finished fine-tune, so an interrupted ablation leaves a partial one.
    """
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    setting = describe_setting(cfg)
    runs = plan(cfg, setting)
    log.info(
        "ablation: %d runs (%d distillations), pool %d images, labelled subsets %s, seeds %s",
        len(runs),
        sum(r.kind == "distill" for r in runs),
        setting.pool_size,
        list(setting.labelled_sizes),
        list(cfg.seeds),
    )
    settings = {
        **config_to_dict(cfg),
        "pool_size": setting.pool_size,
        "labelled_sizes": list(setting.labelled_sizes),
        "student_geometry": {k: v for k, v in setting.student.items()},
    }
    result = AblationResult([], setting.teacher_top1, settings)
    for run in runs:
        execute(run)
        if run.kind == "train":
            result = collect(cfg, runs, setting, settings)
            write_report(result, out)
    result = collect(cfg, runs, setting, settings)
    write_report(result, out)
    return result


def collect(cfg: AblateConfig, runs: list[Run], setting: Setting, settings: dict[str, Any]) -> AblationResult:
    """The finished fine-tunes' final top-1 per (arm, labelled size, seed), summarised."""
    scores: list[dict[str, Any]] = []
    for run in runs:
        if run.kind != "train" or not is_done(run):
            continue
        top1 = final_top1(run, cfg.labelled_data or cfg.data, cfg.val_split)
        scores.append({"arm": run.arm, "labelled": run.labelled, "seed": run.seed, "top1": top1, "epochs": run.epochs})
    return summarise(scores, setting.teacher_top1, settings)
