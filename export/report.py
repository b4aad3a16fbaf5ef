"""The export report: report.json (everything), report.md (a readable table) and an accuracy-vs-latency PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.png into ``out_dir``; returns their paths."""
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    paths["md"].write_text(render_markdown(report))
    plot_accuracy_latency(report, paths["png"])
    return paths


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Export report: {report['model_name']}",
        "",
        f"Source: `{report['source']['path']}` (sha256 {report['source']['sha256'][:12]}...). "
        f"Evaluation: {report['eval']['images']} images from {report['eval']['source']}; "
        f"PyTorch fp32 top-1 {report['eval']['reference_accuracy'] * 100:.2f}%. "
        f"Gate batch sizes: {', '.join(map(str, report['eval']['batches']))}.",
        "",
        "| artifact | precision | runtime | servable | top-1 % | delta pts | agreement % | cos min | cos mean | "
        "max abs diff | batch-mates diff | ms @1 | ms @max | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in report["artifacts"]:
        w = a.get("gate", {}).get("worst", {})
        lat = a.get("latency_ms", {})
        lines.append(
            f"| {a['name']} | {a['precision']} | {a['runtime']} | {'yes' if a['servable'] else 'NO'} | "
            f"{_fmt(w.get('accuracy', None) and w['accuracy'] * 100, '.2f')} | {_fmt(w.get('acc_delta'), '+.2f')} | "
            f"{_fmt(w.get('agreement', None) and w['agreement'] * 100, '.2f')} | {_fmt(w.get('cos_min'), '.5f')} | "
            f"{_fmt(w.get('cos_mean'), '.5f')} | {_fmt(w.get('max_abs_diff'), '.3g')} | "
            f"{_fmt((a.get('gate') or {}).get('batch_independence', {}).get('max_rel_diff'), '.1e')} | "
            f"{_fmt(lat.get('1'), '.2f')} | {_fmt(lat.get(str(report['max_batch'])), '.2f')} | "
            f"{a.get('reason') or ''} |"
        )
    lines += [
        "",
        "Batch-mates diff: max |logits of an image alone - the same image inside the odd and the max batch|, as a "
        "fraction of the largest logit; an artifact above its precision's `max_batch_diff` answers differently "
        "depending on the requests it is batched with and is never served by `--artifact auto`.",
    ]
    opt = report.get("graph_optimisation") or {}
    if opt:
        lines += [
            "",
            "## Graph optimisation",
            "",
            f"Chosen for ONNX Runtime: **{opt['chosen']}**; portable graph for TensorRT/quantization: "
            f"**{opt['portable_for_tensorrt']}**. Median latency (ms) measured interleaved here:",
            "",
        ]
        for name, lat in opt.get("latency_ms", {}).items():
            lines.append(f"- {name}: " + ", ".join(f"batch {b}: {ms:.2f}" for b, ms in lat.items()))
        for name, why in opt.get("rejected", {}).items():
            lines.append(f"- {name} not used: {why}")
    if report.get("quantization"):
        lines += ["", "## Quantization", ""]
        for name, settings in report["quantization"].items():
            worst = settings.get("worst_layers") or []
            lines.append(f"- {name}: `{json.dumps({k: v for k, v in settings.items() if k != 'worst_layers'})}`")
            if worst:
                lines.append(
                    "  - where it loses most (ONNX Runtime's QDQ debugger on 8 calibration images; SQNR of each "
                    "quantized activation's round trip, and of the INT8 model's tensor against FP32): "
                    + "; ".join(f"`{w['tensor']}` {w['qdq_sqnr_db']:.1f} / {w['model_sqnr_db']:.1f} dB" for w in worst)
                )
    if report.get("skipped_formats"):
        lines += ["", "## Not built on this machine", ""]
        lines += [f"- {fmt}: {why}" for fmt, why in report["skipped_formats"].items()]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    lines += ["", f"Tools: {', '.join(f'{k} {v}' for k, v in report['tools'].items())}.", ""]
    return "\n".join(lines)


def plot_accuracy_latency(report: dict[str, Any], path: Path) -> None:
    """Two panels (batch 1, max batch): top-1 accuracy vs latency per artifact; failed ones hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = ["1", str(report["max_batch"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, b in zip(axes, batches, strict=True):
        for a in report["artifacts"]:
            ms = a.get("latency_ms", {}).get(b)
            acc = a.get("gate", {}).get("worst", {}).get("accuracy")
            if ms is None or acc is None:
                continue
            ax.scatter([ms], [acc * 100], s=60, facecolors="C0" if a["servable"] else "none", edgecolors="C0")
            ax.annotate(a["name"], (ms, acc * 100), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(report["eval"]["reference_accuracy"] * 100, color="grey", ls="--", lw=1, label="PyTorch fp32")
        ax.set_xlabel(f"latency at batch {b} (ms, this machine)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"batch {b}")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{report['model_name']}: accuracy vs latency (hollow = not servable)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
