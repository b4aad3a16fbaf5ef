"""The ablation's report: per (arm, labelled subset) mean and spread over seeds, the gain over the scratch
twin (paired by seed), the checks of docs/METHOD.md section 5, as Markdown, JSON and a PNG with error bars."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GOAL_POINTS = 3.0  # relation (or relation+logits) must beat the scratch twin by this much
ARM_ORDER = ("scratch", "scratch_compute", "logits", "feature", "cls_token", "relation", "relation+logits")


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class AblationResult:
    """``rows``: one per (arm, labelled) with per-seed scores, mean, sd and the paired gain over scratch."""

    rows: list[dict[str, Any]]
    teacher_top1: float | None
    settings: dict[str, Any]
    checks: dict[str, bool | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "teacher_top1": self.teacher_top1, "settings": self.settings, "checks": self.checks}

    def row(self, arm: str, labelled: int) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["arm"] == arm and r["labelled"] == labelled), None)

    def markdown(self) -> str:
        s = self.settings
        sizes = sorted({r["labelled"] for r in self.rows})
        lines = [
            f"Pool: {s.get('pool_size', '?')} images of {s['data']} (labels unused), {s['budget']} distillation "
            f"epoch(s) per arm and seed; fine-tuning: {_epochs(self.rows)} on the labelled subsets; "
            f"seeds {', '.join(map(str, s['seeds']))}. Top-1 on the whole validation set after the last epoch, "
            "mean ± sd over seeds [per seed]; gain = paired difference to the scratch twin, mean ± sd.",
            "",
            "| arm | " + " | ".join(f"{n} labelled: top-1 | gain" for n in sizes) + " |",
            "|---|" + "---|---|" * len(sizes),
        ]
        arms = [a for a in ARM_ORDER if any(r["arm"] == a for r in self.rows)]
        for arm in arms:
            cells = []
            for n in sizes:
                r = self.row(arm, n)
                if r is None:
                    cells += ["", ""]
                    continue
                per_seed = ", ".join(f"{v:.1f}" for v in r["top1"])
                cells.append(f"{r['mean']:.2f} ± {r['sd']:.2f} [{per_seed}]")
                cells.append("" if r["gain"] is None else f"{r['gain']:+.2f} ± {r['gain_sd']:.2f}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        if self.teacher_top1 is not None:
            lines.append("| teacher (reference) | " + " | ".join(f"{self.teacher_top1:.2f} | " for _ in sizes) + "|")
        if self.checks:
            lines += ["", "Checks (means over seeds): " + "; ".join(f"{k}: {_yes(v)}" for k, v in self.checks.items())]
        return "\n".join(lines)


def _epochs(rows: list[dict[str, Any]]) -> str:
    """'30 epochs (1000 labelled), 10 epochs (5000 labelled)' from the scratch twin (or any fine-tuned) rows."""
    seen: dict[int, int] = {}
    for r in rows:
        if r["arm"] != "scratch_compute":
            seen.setdefault(r["labelled"], r["epochs"])
    return ", ".join(f"{e} epochs ({n} labelled)" for n, e in sorted(seen.items()))


def _yes(v: bool | None) -> str:
    return "yes" if v else "no" if v is not None else "n/a"


def summarise(scores: list[dict[str, Any]], teacher_top1: float | None, settings: dict[str, Any]) -> AblationResult:
    """Group ``scores`` ({arm, labelled, seed, top1, epochs}) into rows and evaluate the checks."""
    rows: list[dict[str, Any]] = []
    sizes = sorted({s["labelled"] for s in scores})
    for n in sizes:
        scratch = {s["seed"]: s["top1"] for s in scores if s["arm"] == "scratch" and s["labelled"] == n}
        for arm in ARM_ORDER:
            mine = sorted((s for s in scores if s["arm"] == arm and s["labelled"] == n), key=lambda s: s["seed"])
            if not mine:
                continue
            tops = [s["top1"] for s in mine]
            paired = [s["top1"] - scratch[s["seed"]] for s in mine if s["seed"] in scratch]
            rows.append(
                {
                    "arm": arm,
                    "labelled": n,
                    "seeds": [s["seed"] for s in mine],
                    "top1": tops,
                    "mean": statistics.fmean(tops),
                    "sd": _sd(tops),
                    "gain": statistics.fmean(paired) if paired and arm != "scratch" else None,
                    "gain_sd": _sd(paired) if paired and arm != "scratch" else None,
                    "epochs": mine[0]["epochs"],
                }
            )
    result = AblationResult(rows, teacher_top1, settings)
    result.checks = _checks(result, sizes)
    return result


def _checks(result: AblationResult, sizes: list[int]) -> dict[str, bool | None]:
    checks: dict[str, bool | None] = {}
    for n in sizes:
        rel = [r for a in ("relation", "relation+logits") if (r := result.row(a, n)) is not None]
        if not rel:
            continue
        best = max(rel, key=lambda r: r["mean"])
        gain = best["gain"]
        checks[f"n={n}: {best['arm']} >= scratch twin + {GOAL_POINTS:g}"] = (
            None if gain is None else gain >= GOAL_POINTS
        )
        for other in ("feature", "cls_token"):
            o = result.row(other, n)
            checks[f"n={n}: {best['arm']} > {other}"] = None if o is None else best["mean"] > o["mean"]
    return checks


def write_report(result: AblationResult, out: Path) -> None:
    """ablation.md, ablation.json and ablation.png into ``out``."""
    (out / "ablation.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    (out / "ablation.md").write_text("## Ablation: label-scarce distillation\n\n" + result.markdown() + "\n")
    if result.rows:
        plot_ablation(result, out / "ablation.png")


def plot_ablation(result: AblationResult, path: Path) -> Path:
    """Grouped bars (one group per labelled subset) with ±sd error bars; the teacher as a dashed line."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    sizes = sorted({r["labelled"] for r in result.rows})
    arms = [a for a in ARM_ORDER if any(r["arm"] == a for r in result.rows)]
    width = 0.8 / max(len(arms), 1)
    colors = {"relation": "#1f77b4", "relation+logits": "#17becf", "scratch": "#7f7f7f", "scratch_compute": "#b0b0b0"}
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * len(arms) * len(sizes), 4.2))
    lows = []
    for i, arm in enumerate(arms):
        xs, means, sds = [], [], []
        for j, n in enumerate(sizes):
            r = result.row(arm, n)
            if r is not None:
                xs.append(j + (i - (len(arms) - 1) / 2) * width)
                means.append(r["mean"])
                sds.append(r["sd"])
        lows += [m - s for m, s in zip(means, sds, strict=True)]
        bars = ax.bar(xs, means, width * 0.95, yerr=sds, capsize=3, label=arm, color=colors.get(arm))
        for b, m in zip(bars, means, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, m + 0.3, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    if result.teacher_top1 is not None:
        ax.axhline(result.teacher_top1, ls="--", color="#d62728", label=f"teacher {result.teacher_top1:.1f}")
        lows.append(result.teacher_top1)
    ax.set_xticks(range(len(sizes)), [f"{n} labelled images" for n in sizes])
    ax.set_ylim(max(0.0, min(lows) - 5), 100)
    ax.set_ylabel("validation top-1 (%), mean ± sd over seeds")
    seeds = len(result.settings.get("seeds", []))
    ax.set_title(f"label-scarce distillation: pool {result.settings.get('pool_size', '?')}, {seeds} seeds")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
