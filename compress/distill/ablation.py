"""The ablation behind ``tinymim ablate``: equal-budget pre-training by each method, identical fine-tuning.

For each method: stage 1 is ``budget`` epochs of distillation (``tinymim distill --method M``) or, for
``scratch``, of supervised training of the same student; stage 2 is the same ``tinymim train --init``
fine-tuning for every method. The table reports the fine-tuned students' final and best validation top-1
and the teacher's top-1 on the same validation set.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.distill.errors import DistillError

if TYPE_CHECKING:
    from compress.commands.ablate import AblateConfig

log = logging.getLogger(__name__)

PAPER_ORDER = "relation > feature > cls_token, and relation > scratch"


@dataclass
class AblationResult:
    """Per-method accuracies plus the teacher's, and the settings that produced them."""

    rows: list[dict[str, Any]]
    teacher_top1: float | None
    settings: dict[str, Any]
    order_checks: dict[str, bool | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "teacher_top1": self.teacher_top1,
            "settings": self.settings,
            "paper_order": PAPER_ORDER,
            "order_checks": self.order_checks,
        }

    def markdown(self) -> str:
        s = self.settings
        lines = [
            f"Students: {s['student']} fine-tuned after {s['budget']} pre-training epochs (each method) + "
            f"{s['finetune_epochs']} identical fine-tuning epochs; data {s['data']} "
            f"(train {s.get('train_size', '?')}, val {s.get('val_size', '?')}).",
            "",
            "| method | val top-1 (final) | val top-1 (best epoch) | pre-training time (s) |",
            "|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(f"| {r['method']} | {r['top1']:.2f} | {r['best_top1']:.2f} | {r['pretrain_s']:.0f} |")
        if self.teacher_top1 is not None:
            lines.append(f"| teacher (reference) | {self.teacher_top1:.2f} | | |")
        checks = ", ".join(
            f"{k}: {'yes' if v else 'no' if v is not None else 'n/a'}" for k, v in self.order_checks.items()
        )
        lines += ["", f"Paper's order ({PAPER_ORDER}) reproduced here? {checks}"]
        return "\n".join(lines)


def _last_and_best(run: Path) -> tuple[float, float]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    tops = [r["val_top1"] for r in recs if "val_top1" in r]
    if not tops:
        raise DistillError(f"{run} recorded no validation accuracy")
    return float(tops[-1]), float(max(tops))


def teacher_accuracy(cfg: AblateConfig) -> tuple[float | None, bool]:
    """The teacher's top-1 on the validation set through its own preprocessing; (None, False) for backbones."""
    import torch

    from compress.data import TransformDataset, build_datasets, eval_transform
    from compress.distill.teacher_loading import load_teacher
    from compress.engine import evaluate

    t = load_teacher(
        cfg.teacher,
        weights=cfg.teacher_weights,
        mean=cfg.teacher_mean,
        std=cfg.teacher_std,
        img_size=cfg.teacher_img_size,
    )
    if not t.is_classifier:
        return None, False
    data = build_datasets(
        cfg.data,
        val_split=cfg.val_split,
        in_chans=t.preprocess.channels,
        limit_train=cfg.limit_train,
        limit_val=cfg.limit_val,
        seed=cfg.seed,
    )
    if getattr(t.model, "num_classes", 0) != len(data.classes):
        return None, False
    loader = torch.utils.data.DataLoader(TransformDataset(data.val, eval_transform(t.preprocess)), batch_size=256)
    return float(evaluate(t.model, loader, torch.device("cpu"))["top1"]), True


def run_ablation(cfg: AblateConfig) -> AblationResult:
    """Run the methods, fine-tune each identically, write ablation.{md,json,png} into ``cfg.output``."""
    from compress.card import ModelCard
    from compress.commands.distill import DistillConfig
    from compress.commands.distill import run_config as distill
    from compress.commands.train import TrainConfig
    from compress.commands.train import run_config as train
    from compress.configio import build_config, config_to_dict

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    teacher_top1, classifier = teacher_accuracy(cfg)
    methods = list(cfg.methods) or ["scratch", "cls_token", "feature", "relation"] + (["logits"] if classifier else [])
    if "logits" in methods and not classifier:
        raise DistillError(
            "the logits method needs a classifier teacher with the data's classes; drop it from --methods"
        )
    # distillation methods first: scratch copies the distilled student's exact architecture from its card
    order = [m for m in methods if m != "scratch"] + (["scratch"] if "scratch" in methods else [])
    common = dict(
        data=cfg.data,
        val_split=cfg.val_split,
        limit_train=cfg.limit_train,
        limit_val=cfg.limit_val,
        batch_size=cfg.batch_size,
        amp=cfg.amp,
        device=cfg.device,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    rows: dict[str, dict[str, Any]] = {}
    student_card: ModelCard | None = None
    for method in order:
        pre_dir, ft_dir = out / method / "pretrain", out / method / "finetune"
        t0 = time.perf_counter()
        if method == "scratch":
            if student_card is None:
                raise DistillError("scratch needs at least one distillation method to fix the student's architecture")
            kw = student_card.arch_kwargs
            train(
                build_config(
                    TrainConfig,
                    dict(
                        common,
                        arch=student_card.arch,
                        img_size=kw["img_size"],
                        patch_size=kw.get("patch_size"),
                        depth=kw.get("depth"),
                        num_heads=kw.get("num_heads"),
                        embed_dim=kw.get("embed_dim"),
                        in_chans=kw["in_chans"],
                        mean=student_card.preprocess.mean,
                        std=student_card.preprocess.std,
                        epochs=cfg.budget,
                        base_lr=cfg.finetune_base_lr,
                        layer_decay=1.0,
                        augment=cfg.finetune_augment,
                        output=str(pre_dir),
                    ),
                )
            )
        else:
            distill(
                build_config(
                    DistillConfig,
                    dict(
                        common,
                        teacher=cfg.teacher,
                        teacher_weights=cfg.teacher_weights,
                        teacher_mean=cfg.teacher_mean,
                        teacher_std=cfg.teacher_std,
                        teacher_img_size=cfg.teacher_img_size,
                        teacher_block=cfg.teacher_block,
                        student=cfg.student,
                        student_depth=cfg.student_depth,
                        student_embed_dim=cfg.student_embed_dim,
                        student_num_heads=cfg.student_num_heads,
                        student_patch_size=cfg.student_patch_size,
                        method=method,
                        epochs=cfg.budget,
                        base_lr=cfg.distill_base_lr,
                        output=str(pre_dir),
                    ),
                )
            )
            student_card = student_card or ModelCard.load(pre_dir / "last")
        pretrain_s = time.perf_counter() - t0
        train(
            build_config(
                TrainConfig,
                dict(
                    common,
                    init=str(pre_dir),
                    epochs=cfg.finetune_epochs,
                    base_lr=cfg.finetune_base_lr,
                    layer_decay=cfg.finetune_layer_decay,
                    augment=cfg.finetune_augment,
                    output=str(ft_dir),
                ),
            )
        )
        last, best = _last_and_best(ft_dir)
        rows[method] = {
            "method": method,
            "top1": last,
            "best_top1": best,
            "pretrain_s": pretrain_s,
            "pretrain_run": str(pre_dir),
            "finetune_run": str(ft_dir),
        }
        log.info("ablation %s: fine-tuned val top-1 %.2f (best %.2f)", method, last, best)
    ordered = [rows[m] for m in methods]
    acc = {m: rows[m]["top1"] for m in rows}

    def gt(a: str, b: str) -> bool | None:
        return (acc[a] > acc[b]) if a in acc and b in acc else None

    checks = {
        "relation > feature": gt("relation", "feature"),
        "feature > cls_token": gt("feature", "cls_token"),
        "relation > cls_token": gt("relation", "cls_token"),
        "relation > scratch": gt("relation", "scratch"),
    }
    from compress.data import build_datasets

    sizes = build_datasets(
        cfg.data, val_split=cfg.val_split, limit_train=cfg.limit_train, limit_val=cfg.limit_val, seed=cfg.seed
    ).source_info
    settings = {**config_to_dict(cfg), "train_size": sizes.get("train_size"), "val_size": sizes.get("val_size")}
    result = AblationResult(ordered, teacher_top1, settings, checks)
    write_report(result, out)
    return result


def write_report(result: AblationResult, out: Path) -> None:
    """ablation.md, ablation.json and ablation.png (bar chart, teacher as a dashed line) into ``out``."""
    (out / "ablation.json").write_text(json.dumps(result.to_dict(), indent=2))
    title = "## Ablation: distillation methods at an equal budget\n\n"
    (out / "ablation.md").write_text(title + result.markdown() + "\n")
    plot_ablation(result, out / "ablation.png")


def plot_ablation(result: AblationResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = [r["method"] for r in result.rows]
    tops = [r["top1"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.5, 3.8))
    bars = ax.bar(names, tops, color=["#1f77b4" if n == "relation" else "#9aa9b8" for n in names])
    for b, v in zip(bars, tops, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=9)
    if result.teacher_top1 is not None:
        ax.axhline(result.teacher_top1, ls="--", color="#d62728", label=f"teacher {result.teacher_top1:.1f}")
        ax.legend(loc="lower right")
    lo = min(tops + ([result.teacher_top1] if result.teacher_top1 is not None else []))
    ax.set_ylim(max(0.0, lo - 10), 100)
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title("students after equal pre-training budget + identical fine-tuning")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
