"""Figures written into run folders: training curves and confusion matrices (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Three panels over epochs: train/val loss, val top-1/top-5 accuracy, and the last learning rate."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        pts = [(e, h[key]) for e, h in zip(epochs, history, strict=True) if h.get(key) is not None]
        if pts:
            axes[0].plot(*zip(*pts, strict=True), marker="o", label=label)
    axes[0].set_title("loss")
    for key in ("val_top1", "val_top5"):
        pts = [(e, h[key]) for e, h in zip(epochs, history, strict=True) if h.get(key) is not None]
        if pts:
            axes[1].plot(*zip(*pts, strict=True), marker="o", label=key.removeprefix("val_"))
    axes[1].set_title("validation accuracy (%)")
    axes[2].plot(epochs, [h.get("lr", float("nan")) for h in history], marker="o")
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(p)
    return p


def plot_confusion(matrix: Any, labels: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class), counts in the cells."""
    import numpy as np

    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(labels)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
