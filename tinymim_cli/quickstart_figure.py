"""The quickstart's figure: the three models' test top-1 side by side, and accuracy against latency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402


def plot_summary(
    path: Path,
    bars: list[tuple[str, float, str]],
    points: list[tuple[str, float, float]],
    *,
    gain_points: float,
) -> None:
    """Left: ``bars`` (name, test top-1, caption under the name); right: ``points`` (name, latency ms, top-1)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    colours = ["#4c72b0", "#dd8452", "#8c8c8c"]
    names = [f"{name}\n{caption}" for name, _, caption in bars]
    values = [acc for _, acc, _ in bars]
    drawn = left.bar(range(len(bars)), values, color=colours[: len(bars)])
    for rect, acc in zip(drawn, values, strict=True):
        left.annotate(f"{acc:.1f}%", (rect.get_x() + rect.get_width() / 2, acc), ha="center", va="bottom", fontsize=9)
    left.set_xticks(range(len(bars)), names, fontsize=8)
    low = min(values)
    left.set_ylim(max(0.0, low - 10), min(100.0, max(values) + 4))
    left.set_ylabel("test top-1, %")
    left.set_title(f"distilled student vs scratch twin: {gain_points:+.1f} points", fontsize=10)
    left.grid(axis="y", alpha=0.3)
    for i, (name, ms, acc) in enumerate(points):
        right.scatter(ms, acc, s=40)
        # alternate above / below: artifacts of one model often sit at nearly the same point
        right.annotate(name, (ms, acc), textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)
    right.set_xscale("log")
    right.margins(x=0.15, y=0.12)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    right.xaxis.set_major_formatter(plain)
    right.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    right.tick_params(axis="x", which="minor", labelsize=7)
    right.set_xlabel("latency at batch 1, ms (this machine, log scale)")
    right.set_ylabel("top-1, %")
    right.set_title("accuracy vs latency (artifacts: top-1 on the gate's images)", fontsize=10)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
