"""Time a bundle's artifacts alone (no HTTP, no queue): each in a fresh child process, rounds interleaved.

For each artifact (``--artifacts all``: every servable one; ``auto``: the one the service would pick; or
names) and each round, ``python -m serve.bench.probe`` is spawned pinned to ``cpus`` CPUs with ``threads``
runtime threads: its cold start is spawn -> first answer, its peak RSS is the child's own, and its latencies
per batch size are pooled over the rounds. The rounds rotate the artifacts' order, so on a shared machine
every artifact sees the same background load. Decode and preprocess per image are timed here once (they do
not depend on the artifact) on the images the online benchmark sends.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from statistics import median
from typing import Any

from serve.bench.config import BenchConfig
from serve.bench.images import load_images
from serve.bench.stats import summarize
from serve.bundle import Bundle, load_bundle
from serve.preprocess import Preprocessor
from tinymim.errors import ConfigError

log = logging.getLogger(__name__)


def artifact_names(bundle: Bundle, wanted: tuple[str, ...]) -> list[str]:
    """``all`` -> every servable artifact; names are checked against the bundle; ``auto`` is resolved by the probe."""
    if "all" in wanted:
        names = [a.name for a in bundle.artifacts if a.servable]
        if not names:
            raise ConfigError(f"bundle {bundle.root} has no servable artifact")
        return names
    known = {a.name for a in bundle.artifacts}
    unknown = [n for n in wanted if n != "auto" and n not in known]
    if unknown:
        raise ConfigError(f"--artifacts: {', '.join(unknown)} not in the bundle; it has: {', '.join(sorted(known))}")
    return list(dict.fromkeys(wanted))


def _probe(cfg: BenchConfig, name: str, seconds: float, iters: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "serve.bench.probe", str(cfg.offline), name, "--seconds", f"{seconds:.3f}"]
    cmd += ["--batch-sizes", ",".join(str(b) for b in cfg.batch_sizes)]
    if iters:
        cmd += ["--iters", str(iters)]
    if cfg.threads:
        cmd += ["--threads", str(cfg.threads)]
    if cfg.cpus:
        cmd += ["--cpus", str(cfg.cpus)]
    spawned = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"probe of {name} exited {proc.returncode} without a report:\n{proc.stderr[-2000:]}")
    out = json.loads(lines[-1])
    if "error" not in out:
        out["cold_start_s"] = out.pop("first_answer_unix") - spawned
    return out


def _preprocess_split(bundle: Bundle, images: list[bytes]) -> dict[str, Any]:
    pre = Preprocessor.from_card(bundle.preprocess)
    decode, transform = [], []
    for _ in range(max(1, 50 // len(images))):
        for data in images:
            _, d, t = pre.timed(pre.open(data))
            decode.append(d)
            transform.append(t)
    return {"decode": summarize(decode), "preprocess": summarize(transform)}


def run_offline(cfg: BenchConfig) -> dict[str, Any]:
    bundle = load_bundle(cfg.offline, verify=True)
    names = artifact_names(bundle, cfg.artifacts)
    per_round_s = cfg.duration_s / cfg.rounds
    iters = max(1, cfg.requests // cfg.rounds) if cfg.requests else None
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(cfg.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            log.info("offline round %d/%d: %s", r + 1, cfg.rounds, name)
            runs[name].append(_probe(cfg, name, per_round_s, iters))
    artifacts = [_aggregate(name, rs, bundle) for name, rs in runs.items()]
    images = load_images(cfg.images, bundle.preprocess.input_size[-1])
    return {
        "bundle": str(bundle.root),
        "model": bundle.model_name,
        "rounds": cfg.rounds,
        "cpus": cfg.cpus,
        "threads": cfg.threads,
        "artifacts": artifacts,
        "preprocess_per_image": _preprocess_split(bundle, images),
    }


def _aggregate(name: str, runs: list[dict[str, Any]], bundle: Bundle) -> dict[str, Any]:
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"artifact": name, "error": errors[0]}
    first = runs[0]
    art = bundle.artifact(first["artifact"])
    gate = (art.gate or {}).get("worst") or {}
    batches = []
    for b in sorted({int(k) for r in runs for k in r["latencies_s"]}):
        lat = [v for r in runs for v in r["latencies_s"].get(str(b), [])]
        batches.append(
            {
                "batch_size": b,
                "iters": len(lat),
                "samples_per_s": b * len(lat) / sum(lat),
                **summarize(lat),
                "_latencies": lat,
            }
        )
    best = max(batches, key=lambda x: x["samples_per_s"])
    return {
        "artifact": art.name,
        "asked_as": name,
        "precision": art.precision,
        "runtime": first["runtime"],
        "device": first["device"],
        "threads": first["threads"],
        "cpus": first["cpus"],
        "gate_accuracy": gate.get("accuracy"),
        "gate_agreement": gate.get("agreement"),
        "cold_start_s": median(r["cold_start_s"] for r in runs),
        "cold_start_runs_s": [r["cold_start_s"] for r in runs],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "batches": batches,
        "best_samples_per_s": best["samples_per_s"],
        "best_batch_size": best["batch_size"],
    }
