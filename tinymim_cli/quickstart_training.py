"""The quickstart's training stages: teacher, distilled student, its fine-tuning, and the scratch twin.

The label-scarce setting of docs/METHOD.md section 5, on the built-in data:

- teacher:  ``tinymim train`` on every labelled image the scale allows;
- distill:  ``tinymim distill`` of a 4x+ smaller student on the whole image pool, labels unused (relation needs
            none; the logits term, alpha 1, learns the teacher's soft labels);
- finetune: ``tinymim train --init`` of that student on a small labelled subset;
- scratch:  the scratch twin: the student's own architecture trained from scratch on the same labelled subset
            (same seed, so the same images) with the same epochs and batch (the paper's protocol).

Every model is then scored the same way: its final weights (``last/``, never a checkpoint picked on the
test images) on the held-out test split (all of it at the cpu scale), with ``tinymim eval``'s own code. Each
function returns a small JSON-able dict that the summary reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from compress.checkpoint import find_resume_dir, load_model
from compress.distill.config import DistillConfig
from compress.distill.run import run_distill
from compress.engine import cpu_has_native_bf16
from compress.eval_config import EvalConfig
from compress.evaluation import evaluate_checkpoint
from compress.losses import method_class, parse_methods
from compress.models import create_model
from compress.recipe import train_classifier
from compress.train_config import TrainConfig
from tinymim.configio import build_config
from tinymim_cli.quickstart_config import DATA, SCALES, QuickstartConfig

log = logging.getLogger(__name__)


def teacher_amp(cfg: QuickstartConfig) -> str:
    """The ``amp`` of the teacher and distillation stages, whose teacher-sized model sets the time; the fine-tune
    and scratch stages train in fp32 (bf16 does not make a 0.6 M-parameter ViT faster on a CPU). Measured in
    BENCHMARKS.md ("bf16 autocast vs fp32 for CPU training", and the quickstart settings' revision): bf16 trains
    the teacher 1.3x faster on a CPU with native bf16, at the same accuracy; on a CPU without it bf16 is
    emulated and slower than fp32, so auto is off there."""
    if cfg.amp != "auto":
        return cfg.amp
    if cfg.device == "cuda":
        return "auto"  # bf16 (or fp16) where the GPU supports it: compress.engine.resolve_amp
    return "bf16" if cpu_has_native_bf16() else "off"


def scale_models(scale: str) -> tuple[Any, Any]:
    """The untrained teacher and student of a scale (``SCALES``), 10 classes of 1-channel images."""
    t, d = SCALES[scale]["teacher"], SCALES[scale]["distill"]
    geometry = {"num_classes": 10, "img_size": t["img_size"], "in_chans": 1, "patch_size": t["patch_size"]}
    teacher, _ = create_model(
        t["arch"], depth=t["depth"], embed_dim=t["embed_dim"], num_heads=t["num_heads"], **geometry
    )
    student, _ = create_model(
        d["student"],
        depth=d["student_depth"],
        embed_dim=d["student_embed_dim"],
        num_heads=d["student_num_heads"],
        **geometry,
    )
    return teacher, student


def _train_values(cfg: QuickstartConfig, stage_dir: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"data": DATA, "device": cfg.device, "progress": cfg.progress, "seed": cfg.seed, **sizes}
    values["output"] = str(stage_dir)
    if find_resume_dir(stage_dir) is not None:
        log.info("continuing the interrupted run in %s", stage_dir)
        values["resume"] = str(stage_dir)
    return values


def model_facts(weights_dir: Path) -> dict[str, Any]:
    """Architecture, parameters and training data of the checkpoint in ``weights_dir`` (read from its card)."""
    model, card = load_model(weights_dir)
    c, h, _ = card.preprocess.input_size
    config = card.training.get("config") or {}
    return {
        "run": str(weights_dir.parent),
        "weights": str(weights_dir),
        "arch": card.arch,
        "size": {
            "img_size": h,
            "in_chans": c,
            "patch_size": model.patch_embed.patch_size[0],
            "depth": len(model.blocks),
            "embed_dim": model.embed_dim,
            "num_heads": card.arch_kwargs.get("num_heads", model.blocks[0].attn.num_heads),
        },
        "params": sum(p.numel() for p in model.parameters()),
        "train_images": card.data.get("train_size"),
        "epochs": config.get("epochs"),
        "seed": config.get("seed"),
    }


def _test_score(cfg: QuickstartConfig, weights_dir: Path, stage_dir: Path) -> dict[str, Any]:
    """Top-1 on the held-out test split (plus the confusion matrix PNG), as ``tinymim eval`` computes it."""
    values = {"checkpoint": str(weights_dir), "data": DATA, "device": cfg.device, "output": str(stage_dir)}
    res = evaluate_checkpoint(build_config(EvalConfig, {**values, **SCALES[cfg.scale]["test"]}))
    return {"test_top1": res["top1"], "test_images": res["n"], "confusion_png": str(stage_dir / "confusion.png")}


def teacher_stage(cfg: QuickstartConfig, stage_dir: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    run_dir = train_classifier(build_config(TrainConfig, _train_values(cfg, stage_dir, sizes)))
    return model_facts(run_dir / "last") | _test_score(cfg, run_dir / "last", stage_dir / "eval")


def distill_stage(cfg: QuickstartConfig, stage_dir: Path, teacher_dir: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "teacher": str(teacher_dir / "last"),
        "data": DATA,
        "alpha": 1.0,  # the pool's labels are never read: a logits term learns the teacher's soft labels only
        "device": cfg.device,
        "seed": cfg.seed,
        "output": str(stage_dir),
        "progress": cfg.progress,
        **sizes,
    }
    values["resume"] = find_resume_dir(stage_dir) is not None
    dcfg = build_config(DistillConfig, values)
    options = {"logits": {"temperature": dcfg.temperature, "alpha": dcfg.alpha}, "logits_hard": {"alpha": dcfg.alpha}}
    labels_used = any(method_class(m).uses_labels(options.get(m, {})) for m, _ in parse_methods(dcfg.method))
    run_dir = run_distill(dcfg)
    facts = model_facts(run_dir / "last")
    return facts | {"method": dcfg.method, "pool_images": facts["train_images"], "labels_used": labels_used}


def finetune_stage(
    cfg: QuickstartConfig, stage_dir: Path, distill_dir: Path, sizes: dict[str, Any], recipe: dict[str, Any]
) -> dict[str, Any]:
    values = _train_values(cfg, stage_dir, {**sizes, **recipe})
    values["init"] = str(distill_dir / "last")
    run_dir = train_classifier(build_config(TrainConfig, values))
    return model_facts(run_dir / "last") | _test_score(cfg, run_dir / "last", stage_dir / "eval")


def scratch_stage(
    cfg: QuickstartConfig, stage_dir: Path, student_dir: Path, sizes: dict[str, Any], recipe: dict[str, Any]
) -> dict[str, Any]:
    """The scratch twin: the fine-tuned student's exact architecture, trained from scratch on the same budget."""
    _, card = load_model(student_dir / "last")
    kw = card.arch_kwargs
    twin = {
        "arch": card.arch,
        **{k: kw[k] for k in ("img_size", "in_chans", "patch_size", "depth", "embed_dim", "num_heads") if k in kw},
    }
    run_dir = train_classifier(build_config(TrainConfig, _train_values(cfg, stage_dir, {**sizes, **recipe, **twin})))
    return model_facts(run_dir / "last") | _test_score(cfg, run_dir / "last", stage_dir / "eval")
