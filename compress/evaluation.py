"""What ``tinymim eval`` does: top-1/top-5, per-class accuracy and a confusion matrix (PNG + JSON).

The images are preprocessed exactly as the card says (``eval_transform(card.preprocess)``); the data's
class names must be the card's labels (same names; order may differ). The config is
:class:`compress.eval_config.EvalConfig`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.checkpoint import load_model
from compress.data import TransformDataset, build_datasets, eval_transform
from compress.distributed import resolve_device
from compress.engine import evaluate
from compress.errors import DataError
from compress.eval_config import EvalConfig
from compress.plots import plot_confusion

log = logging.getLogger(__name__)


def per_class_and_confusion(preds: Any, targets: Any, num_classes: int) -> tuple[list[list[int]], list[float | None]]:
    """Confusion counts m[true][pred] and per-class accuracy 100 * m[c][c] / sum_j m[c][j] (None if no samples)."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(targets), np.asarray(preds)), 1)
    rows = m.sum(axis=1)
    acc = [float(100.0 * m[c, c] / rows[c]) if rows[c] else None for c in range(num_classes)]
    return m.tolist(), acc


def evaluate_checkpoint(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate; writes ``eval.json`` and ``confusion.png`` into the output folder and returns the results."""
    device = resolve_device(cfg.device)
    model, card = load_model(cfg.checkpoint, device=device)
    if card.num_classes == 0 or card.task != "classifier":
        raise DataError(
            f"{cfg.checkpoint} is a {card.task} without a trained head; fine-tune it with tinymim train --init"
        )
    data = build_datasets(
        cfg.data,
        val_split=cfg.val_split,
        strict=cfg.strict_data,
        in_chans=card.preprocess.channels,
        limit_train=cfg.limit if cfg.split == "train" else None,
        limit_val=cfg.limit if cfg.split == "val" else None,
    )
    if sorted(data.classes) != sorted(card.labels):
        raise DataError(f"the data's classes {list(data.classes)} are not the model's labels {list(card.labels)}")
    remap = [card.labels.index(c) for c in data.classes]  # data label -> model label
    ds = TransformDataset(data.train if cfg.split == "train" else data.val, eval_transform(card.preprocess))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        collate_fn=lambda items: (torch.stack([x for x, _ in items]), torch.tensor([remap[y] for _, y in items])),
    )
    res = evaluate(model, loader, device, return_outputs=True, progress=True)
    preds = res["logits"].argmax(dim=1).numpy()
    matrix, acc = per_class_and_confusion(preds, res["targets"].numpy(), card.num_classes)
    out_dir = Path(cfg.output) if cfg.output else _default_output(Path(cfg.checkpoint))
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "checkpoint": str(cfg.checkpoint),
        "data": cfg.data,
        "split": cfg.split,
        "n": res["n"],
        "top1": res["top1"],
        "top5": res["top5"],
        "loss": res["loss"],
        "per_class_accuracy": dict(zip(card.labels, acc, strict=True)),
        "labels": list(card.labels),
        "confusion_matrix": matrix,
        "confusion_png": str(out_dir / "confusion.png"),
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    plot_confusion(matrix, card.labels, out_dir / "confusion.png")
    log.info(
        "top-1 %.2f%%  top-5 %.2f%% on %d images; wrote %s", res["top1"], res["top5"], res["n"], out_dir / "eval.json"
    )
    return result


def _default_output(ckpt: Path) -> Path:
    """RUN/eval for a run folder; ``eval-<name>`` beside a checkpoint folder (never inside it)."""
    if ckpt.is_dir() and not (ckpt / "model.safetensors").is_file():
        return ckpt / "eval"
    folder = ckpt if ckpt.is_dir() else ckpt.parent
    return folder.parent / f"eval-{folder.name}"
