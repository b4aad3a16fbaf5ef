"""``tinymim quickstart``: the whole product on built-in data, one stage after another.

The setting is the one where distillation pays (docs/METHOD.md section 5): a teacher trained on every labelled
image, a pool of images whose labels the student never sees, and a small labelled subset.

1. teacher   ``tinymim train``         the teacher on all the labelled images
2. distill   ``tinymim distill``       a 4x+ smaller student on the whole pool, labels unused (relation + logits)
3. finetune  ``tinymim train --init``  the distilled student on a small labelled subset
4. scratch   ``tinymim train``         the scratch twin: same architecture, same labelled images, same budget
5. export    ``tinymim export``        ONNX FP32 + INT8 (+ TensorRT FP16 on a GPU) behind the accuracy gate
6. serve     ``tinymim serve``         a real server on a free loopback port; held-out images over HTTP;
             ``tinymim bench`` against it; the server is stopped with SIGTERM
7. summary   teacher / distilled student / scratch twin side by side: accuracy on the test split, the
             gain over the scratch twin, parameters, latency and speed-up -> summary.md / summary.json / PNG

Each stage calls the same code the CLI runs and records ``stage.json`` in its folder when it finishes;
re-running reuses finished stages whose settings did not change (``--fresh`` starts over). A stage that fails
stops the run with that stage's own error and keeps everything already done.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinymim.configio import add_config_arguments, config_from_args
from tinymim_cli.quickstart_config import SCALES, QuickstartConfig

log = logging.getLogger(__name__)

STAGE_FILE = "stage.json"
STAGE_FORMAT = 4  # bump when a stage's result layout changes: older markers are then redone, not misread


class Stage:
    """A finished-marker around one step: skips work whose recorded settings match."""

    def __init__(self, root: Path, name: str, settings: dict[str, Any]) -> None:
        self.dir = root / name
        self.name = name
        self.settings = json.loads(json.dumps({**settings, "stage_format": STAGE_FORMAT}, default=str))

    def done(self) -> dict[str, Any] | None:
        marker = self.dir / STAGE_FILE
        if not marker.is_file():
            return None
        rec = json.loads(marker.read_text())
        return rec["result"] if rec.get("settings") == self.settings else None

    def finish(self, result: dict[str, Any], seconds: float) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        rec = {"settings": self.settings, "result": result, "seconds": round(seconds, 1)}
        tmp = self.dir / (STAGE_FILE + ".tmp")
        tmp.write_text(json.dumps(rec, indent=2, default=str))
        tmp.replace(self.dir / STAGE_FILE)
        return result


def _run_stage(stage: Stage, index: int, total: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    cached = stage.done()
    if cached is not None:
        log.info("[%d/%d] %s: finished earlier, reusing %s (use --fresh to redo)", index, total, stage.name, stage.dir)
        return cached
    log.info("[%d/%d] %s ...", index, total, stage.name)
    t0 = time.perf_counter()
    stale = (stage.dir / STAGE_FILE).is_file()  # finished earlier with other settings (or other upstream)
    if stage.dir.exists() and (stale or stage.name in ("export", "serve")):
        # an interrupted training stage resumes from its last/ state; anything else is rebuilt, never half-trusted
        shutil.rmtree(stage.dir)
    result = fn()
    seconds = time.perf_counter() - t0
    log.info("[%d/%d] %s done in %.0f s", index, total, stage.name, seconds)
    return stage.finish({**result, "seconds": round(seconds, 1)}, seconds)


def run_config(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) every stage; returns the summary dict also written to summary.json."""
    from tinymim_cli.quickstart_stages import export_stage, serve_stage
    from tinymim_cli.quickstart_summary import write_summary
    from tinymim_cli.quickstart_training import distill_stage, finetune_stage, scratch_stage, teacher_amp, teacher_stage

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the progress
    root = Path(cfg.out)
    if cfg.fresh and root.exists():
        log.info("--fresh: removing %s", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    sizes = SCALES[cfg.scale]
    t_start = time.perf_counter()
    common = {"scale": cfg.scale, "device": cfg.device, "seed": cfg.seed, "test": sizes["test"]}
    labelled = sizes["labelled"]
    amp = teacher_amp(cfg)
    log.info(
        "teacher and distillation stages: amp %s (--amp); the fine-tune and scratch stages: amp auto (fp32 on a CPU)",
        amp,
    )
    teacher, distill = {**sizes["teacher"], "amp": amp}, {**sizes["distill"], "amp": amp}
    # (name, the stage whose output it reads, its settings, what it runs)
    steps = [
        ("teacher", None, {**common, **teacher}, lambda d: teacher_stage(cfg, d, teacher)),
        (
            "distill",
            "teacher",
            {**common, **distill},
            lambda d: distill_stage(cfg, d, root / "teacher", distill),
        ),
        (
            "finetune",
            "distill",
            {**common, **labelled, **sizes["finetune"]},
            lambda d: finetune_stage(cfg, d, root / "distill", labelled, sizes["finetune"]),
        ),
        (
            "scratch",
            "finetune",
            {**common, **labelled, **sizes["scratch"]},
            lambda d: scratch_stage(cfg, d, root / "finetune", labelled, sizes["scratch"]),
        ),
        ("export", "finetune", common, lambda d: export_stage(cfg, d, root / "finetune" / "last")),
        (
            "serve",
            "export",
            {**common, "bench_seconds": cfg.bench_seconds, "http_images": cfg.http_images},
            lambda d: serve_stage(cfg, d, root / "export" / "bundle"),
        ),
    ]
    results: dict[str, dict[str, Any]] = {}
    recorded: dict[str, dict[str, Any]] = {}
    for i, (name, upstream, settings, fn) in enumerate(steps, 1):
        # a stage's record includes its upstream's (recursively), so a redone stage also redoes what reads it
        recorded[name] = {**settings, "upstream": recorded[upstream] if upstream else None}
        stage = Stage(root, name, recorded[name])
        results[name] = _run_stage(stage, i, len(steps) + 1, lambda fn=fn, stage=stage: fn(stage.dir))
    log.info("[%d/%d] summary ...", len(steps) + 1, len(steps) + 1)
    summary = write_summary(root, cfg, results, wall_s=time.perf_counter() - t_start)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, QuickstartConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(QuickstartConfig, args)
    summary = run_config(cfg)
    print(Path(summary["summary_md"]).read_text())
    return 0
