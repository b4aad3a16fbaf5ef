"""The quickstart's summary: what was gained (size, speed) and what it cost (accuracy), measured here."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from compress.checkpoint import load_model

log = logging.getLogger(__name__)


def _pytorch_latency_ms(run_dirs: dict[str, Path], repeats: int = 30) -> dict[str, float]:
    """Median batch-1 latency of each model in PyTorch eager (fp32, CPU), interleaved in one loop."""
    import torch

    models = {}
    for name, d in run_dirs.items():
        model, card = load_model(d)
        models[name] = (model.eval(), torch.zeros(1, *card.preprocess.input_size))
    times: dict[str, list[float]] = {n: [] for n in models}
    with torch.inference_mode():
        for _ in range(3):
            for m, x in models.values():
                m(x)
        for _ in range(repeats):
            for n, (m, x) in models.items():
                t0 = time.perf_counter()
                m(x)
                times[n].append(time.perf_counter() - t0)
    return {n: 1000 * sorted(v)[len(v) // 2] for n, v in times.items()}


def _size(facts: dict[str, Any]) -> str:
    k = facts["size"]
    return (
        f"{k['img_size']} px x{k['in_chans']} ch, patch {k['patch_size']}, depth {k['depth']}, "
        f"width {k['embed_dim']}, {k['num_heads']} heads"
    )


def _seen(facts: dict[str, Any]) -> str:
    return f"{facts.get('train_images')} images x {facts.get('epochs')} epoch(s)"


def _plot(path: Path, points: list[tuple[str, float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ms, acc in points:
        ax.scatter(ms, acc, s=40)
        ax.annotate(name, (ms, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("latency at batch 1, ms (this machine)")
    ax.set_ylabel("test top-1, %")
    ax.set_title("quickstart: accuracy vs latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(root: Path, cfg: Any, results: dict[str, dict[str, Any]], *, wall_s: float) -> dict[str, Any]:
    teacher, student, serve = results["teacher"], results["finetune"], results["serve"]
    lat_pt = _pytorch_latency_ms({"teacher": Path(teacher["run"]), "student": Path(student["run"])})
    t_acc, s_acc = teacher["top1"], student["top1"]
    artifacts = results["export"]["artifacts"]
    art_b1 = {a["name"]: float(a["latency_ms"].get("1", float("nan"))) for a in artifacts if a.get("latency_ms")}
    levels = {lv["concurrency"]: lv for lv in (serve["bench"]["online"] or {}).get("levels", [])}
    c1 = levels.get(min(levels)) if levels else {}
    cmax = levels.get(max(levels)) if levels else {}
    stage_seconds = {k: v.get("seconds") for k, v in results.items()}
    summary = {
        "scale": cfg.scale,
        "device": cfg.device,
        "wall_seconds": round(wall_s, 1),
        "stage_seconds": stage_seconds,
        "teacher": {
            "size": _size(teacher),
            "params": teacher["params"],
            "test_top1": t_acc,
            "pytorch_b1_ms": lat_pt["teacher"],
        },
        "student": {
            "size": _size(student),
            "params": student["params"],
            "test_top1": s_acc,
            "pytorch_b1_ms": lat_pt["student"],
        },
        "artifacts": artifacts,
        "served": {
            "artifact": serve["artifact"],
            "http_top1": serve["http_top1"],
            "http_vs_runtime_agreement": serve["http_vs_runtime_agreement"],
            "batch_sizes_seen": serve["batch_sizes_seen"],
            "levels": list(levels.values()),
        },
        "param_reduction": teacher["params"] / student["params"],
        "speedup_vs_teacher_pytorch": lat_pt["teacher"] / art_b1.get(serve["artifact"], float("nan")),
        "accuracy_cost_points": t_acc - s_acc,
    }
    points = [("teacher (PyTorch)", lat_pt["teacher"], t_acc), ("student (PyTorch)", lat_pt["student"], s_acc)]
    for a in artifacts:  # the gate measured each artifact's own accuracy on the evaluation images
        acc = (a["gate"] or {}).get("accuracy")
        if a["name"] in art_b1 and acc is not None:
            points.append((f"student {a['name']}", art_b1[a["name"]], 100 * float(acc)))
    _plot(root / "accuracy_vs_latency.png", points)
    lines = [
        "# tinymim quickstart summary",
        "",
        f"Scale `{cfg.scale}` on {cfg.device}; whole run {wall_s:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in stage_seconds.items() if v is not None)}; "
        "reused stages count 0 s of this run but show their original time).",
        "",
        "| | architecture (as trained) | parameters | trained on | test top-1 | PyTorch batch-1 latency |",
        "|---|---|---|---|---|---|",
        f"| teacher | {_size(teacher)} | {teacher['params'] / 1e6:.2f} M | {_seen(teacher)} | {t_acc:.2f}% | "
        f"{lat_pt['teacher']:.2f} ms |",
        f"| student | {_size(student)} | {student['params'] / 1e6:.2f} M | distilled: {_seen(results['distill'])}; "
        f"fine-tuned: {_seen(student)} | {s_acc:.2f}% | {lat_pt['student']:.2f} ms |",
        "",
        "| artifact | precision | servable | gate agreement | batch-1 latency | max-batch latency | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in artifacts:
        lat = a.get("latency_ms") or {}
        big = max(lat, key=int) if lat else None
        agree = (a["gate"] or {}).get("agreement")
        lines.append(
            f"| {a['name']} | {a['precision']} | {'yes' if a['servable'] else 'no'} | "
            f"{'' if agree is None else f'{100 * agree:.2f}%'} | {lat.get('1', float('nan')):.2f} ms | "
            f"{'' if big is None else f'{lat[big]:.2f} ms (batch {big})'} | {a.get('reason') or ''} |"
        )
    lines += [
        "",
        f"Served artifact `{serve['artifact']}` over HTTP: {serve['http_images']} held-out images, top-1 "
        f"{serve['http_top1']:.2f}%, {serve['http_vs_runtime_agreement']:.1f}% identical to direct runtime "
        f"predictions (required: the gate's {serve.get('required_agreement', 100.0):.1f}% for this artifact; the "
        f"server forms its own batches); batch sizes formed by the server: {serve['batch_sizes_seen']}.",
    ]
    for lv in levels.values():
        lines.append(
            f"- concurrency {lv['concurrency']}: p50 {lv['p50_ms']:.2f} ms, p99 {lv['p99_ms']:.2f} ms, "
            f"{lv['throughput_rps']:.1f} req/s, errors {lv.get('errors') or 0}"
        )
    lines += [
        "",
        f"**Gained:** {summary['param_reduction']:.1f}x fewer parameters; the served student runs "
        f"{summary['speedup_vs_teacher_pytorch']:.1f}x faster at batch 1 than the teacher in PyTorch "
        f"({art_b1.get(serve['artifact'], float('nan')):.2f} ms vs {lat_pt['teacher']:.2f} ms). "
        f"**Cost:** {summary['accuracy_cost_points']:+.2f} accuracy points (teacher minus student).",
        "",
        "Files: `teacher/curves.png`, `distill/curves.png`, `finetune/curves.png` (training curves), "
        "`accuracy_vs_latency.png`, `export/bundle/report.md` (accuracy gate), `serve/bench_cdf.png`.",
        f"Served p50 at concurrency {c1.get('concurrency', '-')}: {c1.get('p50_ms', float('nan')):.2f} ms; "
        f"p99 at concurrency {cmax.get('concurrency', '-')}: {cmax.get('p99_ms', float('nan')):.2f} ms.",
    ]
    md = root / "summary.md"
    md.write_text("\n".join(lines) + "\n")
    summary["summary_md"] = str(md)
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("summary: %s", md)
    return summary
