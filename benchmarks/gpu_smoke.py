"""The GPU smoke check: what is installed, then train -> export -> build -> gate -> serve -> time on an NVIDIA GPU.

    python benchmarks/gpu_smoke.py                  # or `make gpu-check`; ViT-T and ViT-S at 224 px, < 8 min
    python benchmarks/gpu_smoke.py --quick          # ViT-T only
    python benchmarks/gpu_smoke.py --out DIR        # report folder (default runs/gpu_smoke)

Parts, each reported as ok / skipped / failed with its reason, the rest going on when one cannot run:

1. environment: NVIDIA driver and GPUs (libcuda/NVML, no torch needed), torch and its CUDA, ONNX Runtime's
   distributions and providers and whether its CUDA provider works, TensorRT and cuda-python;
2. per model (ViT-T, ViT-S; 1-channel, 224 px, patch 16): ``tinymim train`` on the GPU for a short run on the
   built-in Fashion-MNIST (so the gate compares decisive predictions, not the near-ties of random weights);
3. ``tinymim export`` of every GPU artifact that can be built here (ONNX Runtime CUDA FP16; TensorRT FP16 and
   INT8 when TensorRT is installed) beside the ONNX FP32 reference, the gate at batch 1, 7 and 32;
4. one request per servable artifact through a real server (``tinymim serve --artifact NAME``, serve/process.py),
   and ``--artifact auto``, which must pick a GPU artifact;
5. latency of every servable artifact at batch 1 and 32, interleaved (export/latency.py), as ms, images/s and the
   speed-up over ONNX Runtime FP32 on this machine's CPU.

It writes ``OUT/gpu_smoke.json`` and ``OUT/gpu_smoke.md``. After a run on a GPU it also writes the BENCHMARKS.md
section (benchmarks/results/gpu_smoke.md + .json); without a GPU it says so there only while no GPU run has been
recorded, so a CPU run never hides GPU figures. Exit code: 0 when every part that could run passed (a machine
without a GPU gets 0 and a "no GPU here" report), 1 when a part failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("vit_tiny", "vit_small")
BATCHES = (1, 32)
GPU_ARTIFACTS = ("onnx-cuda-fp16", "tensorrt-fp16", "tensorrt-int8")


class Parts:
    """Runs named parts within a time budget; every part ends as ok / skipped / failed with a reason."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.rows: list[dict[str, Any]] = []

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def skip(self, name: str, reason: str) -> None:
        self.rows.append({"part": name, "status": "skipped", "reason": reason, "seconds": 0.0})
        print(f"[skip] {name}: {reason}", flush=True)

    def run(self, name: str, fn: Callable[[], Any], *, needs_s: float = 0.0) -> Any:
        if self.left() < needs_s:
            self.skip(name, f"time budget: {self.left():.0f} s left, this part needs about {needs_s:.0f} s")
            return None
        print(f"[run ] {name}", flush=True)
        t = time.monotonic()
        try:
            value = fn()
        except Exception as err:  # noqa: BLE001 - a failing part is reported and the rest goes on
            self.rows.append(
                {
                    "part": name,
                    "status": "failed",
                    "reason": f"{type(err).__name__}: {str(err)[:600]}",
                    "seconds": round(time.monotonic() - t, 1),
                    "traceback": traceback.format_exc()[-3000:],
                }
            )
            print(f"[FAIL] {name}: {type(err).__name__}: {err}", flush=True)
            return None
        self.rows.append({"part": name, "status": "ok", "reason": "", "seconds": round(time.monotonic() - t, 1)})
        return value


def _version(dist: str) -> str | None:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version(dist)
    return None


def environment() -> dict[str, Any]:
    """What is installed: driver and GPUs, torch, ONNX Runtime, TensorRT, cuda-python, the nvidia-* wheels."""
    from serve.runtimes.cuda_probe import driver, onnxruntime_cuda
    from serve.runtimes.tensorrt import tensorrt_probe

    drv = driver()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "driver": {"ok": drv.ok, "reason": drv.reason, **drv.facts},
    }
    try:
        import torch

        env["torch"] = {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_available": bool(drv.ok and torch.cuda.is_available()),
        }
    except ImportError as err:
        env["torch"] = {"version": None, "reason": str(err)}
    ort = onnxruntime_cuda()
    env["onnxruntime"] = {"cuda_ok": ort.ok, "reason": ort.reason, **ort.facts}
    trt = tensorrt_probe()
    env["tensorrt"] = {"ok": trt.ok, "reason": trt.reason, **trt.facts}
    env["cuda_python"] = _version("cuda-python") or _version("cuda-bindings")
    env["nvidia_wheels"] = {
        d.metadata["Name"]: d.version
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith(("nvidia-", "tensorrt"))
    }
    return env


def train(key: str, out: Path, quick: bool) -> Path:
    """A short GPU training run with the real CLI; returns the run folder."""
    run = out / "train" / key
    cmd = [sys.executable, "-m", "tinymim_cli", "train", "--data", "builtin:fashion-mnist", "--arch", key]
    cmd += ["--img-size", "224", "--patch-size", "16", "--epochs", "2", "--batch-size", "128", "--lr", "1e-3"]
    cmd += ["--limit-train", "4000" if quick else "8000", "--limit-val", "1000", "--layer-decay", "1"]
    cmd += ["--no-augment", "--warmup-epochs", "0.2", "--device", "cuda", "--amp", "bf16", "--num-workers", "8"]
    cmd += ["--no-deterministic", "--no-progress", "--output", str(run)]
    log = out / f"train-{key}.log"
    with open(log, "wb") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f"tinymim train exited {rc}; log {log}:\n{log.read_text(errors='replace')[-1500:]}")
    return run


def export(key: str, run: Path, out: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    from export.config import ExportConfig
    from export.pipeline import export_bundle

    cfg = ExportConfig(
        checkpoint=str(run),
        out=str(out / "bundles" / key),
        formats=("onnx", *formats),
        eval_images=500,
        calib_images=256,
        max_batch=32,
        optimise=False,
        latency_repeats=5,
        model_name=f"smoke-{key}",
        timing_cache=str(out / "timing.cache"),
    )
    result = export_bundle(cfg)
    return {"bundle": str(result.bundle), "exit_code": result.exit_code, "report": result.report}


def serve(bundle: Path, out: Path, artifacts: list[str]) -> dict[str, Any]:
    """One request per artifact (and auto) through a real server; returns {name: answer or error}."""
    import httpx

    from compress.data import build_datasets
    from serve.process import ServerProcess

    data = build_datasets("builtin:fashion-mnist", in_chans=1, limit_train=10, limit_val=10)
    image, label = data.val[0]
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    answers: dict[str, Any] = {}
    for name in [*artifacts, "auto"]:
        server = ServerProcess(bundle, "--artifact", name, "--max-batch-size", "8", log_path=out / f"serve-{name}.log")
        try:
            server.wait_ready(240)
            info = httpx.get(server.url + "/v1/model", timeout=10).json()
            t = time.perf_counter()
            r = httpx.post(
                server.url + "/v1/classify?top_k=1",
                content=buf.getvalue(),
                timeout=60,
                headers={"Content-Type": "image/png"},
            )
            ms = (time.perf_counter() - t) * 1e3
            r.raise_for_status()
            pred = r.json()["predictions"][0]
            answers[name] = {
                "artifact": info["artifact"],
                "runtime": info["runtime"],
                "device": info["device"],
                "top1": pred["labels"][0],
                "true_label": data.classes[label],
                "score": round(pred["scores"][0], 4),
                "request_ms": round(ms, 2),
            }
        except Exception as err:  # noqa: BLE001 - recorded per artifact; the others still get their request
            answers[name] = {"error": f"{type(err).__name__}: {str(err)[:400]}"}
        finally:
            code = server.stop()
            answers[name]["exit_code"] = code
    failed = [n for n, a in answers.items() if "error" in a or a.get("exit_code") != 0]
    gpu_auto = answers.get("auto", {}).get("device") == "cuda"
    if failed or not gpu_auto:
        why = f"failed: {failed}" if failed else f"auto served {answers['auto'].get('artifact')} on the CPU"
        raise RuntimeError(f"{why}; answers: {json.dumps(answers)[:1500]}")
    return answers


def timing(bundle_dir: Path, artifacts: list[str]) -> dict[str, Any]:
    from export.latency import interleaved_latency
    from serve.bundle import load_bundle
    from serve.runtimes import open_runtime

    bundle = load_bundle(bundle_dir)
    runtimes = {name: open_runtime(bundle, bundle.artifact(name)) for name in artifacts}
    try:
        ms = interleaved_latency(
            {n: r.infer for n, r in runtimes.items()},
            input_shape=tuple(bundle.input.shape[1:]),  # type: ignore[arg-type]
            batch_sizes=BATCHES,
            repeats=20,
            warmup=3,
        )
    finally:
        for r in runtimes.values():
            r.close()
    rows = {}
    for name, per in ms.items():
        rows[name] = {
            **{f"ms_b{b}": per[str(b)] for b in BATCHES},
            "img_per_s_b32": round(32 / per["32"] * 1e3, 1),
            **{f"speedup_b{b}": round(ms["onnx-fp32"][str(b)] / per[str(b)], 2) for b in BATCHES if "onnx-fp32" in ms},
        }
    return rows


def smoke(out: Path, models: tuple[str, ...], budget_s: float, quick: bool) -> dict[str, Any]:
    from export.gpu_artifacts import format_status

    parts = Parts(budget_s)
    env = parts.run("environment", environment) or {}
    gpu_ok = bool(env.get("driver", {}).get("ok"))
    report: dict[str, Any] = {
        "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "gpu": gpu_ok,
        "environment": env,
        "models": {},
    }
    formats = []
    for fmt in GPU_ARTIFACTS:  # what this machine can build, or which part is missing
        ok, why = format_status(fmt)
        if ok:
            formats.append(fmt)
        else:
            parts.skip(f"build {fmt}", why)
    if not gpu_ok:
        reason = env.get("driver", {}).get("reason", "the environment part failed")
        report["verdict"] = f"no GPU here: {reason}"
        for key in models:
            for step in ("train", "export", "serve", "timing"):
                parts.skip(f"{key}/{step}", "no GPU here (see the verdict above)")
    else:
        gpus = ", ".join(g["name"] for g in env["driver"].get("gpus", []))
        drv = env["driver"]
        report["verdict"] = f"ran on {gpus} (driver {drv.get('driver')}, CUDA {drv.get('driver_cuda')})"
        for key in models:
            m: dict[str, Any] = {}
            report["models"][key] = m
            if not formats:
                for step in ("train", "export", "serve", "timing"):
                    parts.skip(f"{key}/{step}", "no GPU artifact can be built here (see the build parts above)")
                continue
            if not env.get("torch", {}).get("cuda_available"):
                parts.skip(f"{key}/train", f"torch here cannot use the GPU: {env.get('torch')}")
                continue
            run = parts.run(f"{key}/train", lambda key=key: train(key, out, quick), needs_s=60)
            if run is None:
                continue
            exp = parts.run(f"{key}/export", lambda key=key, run=run: export(key, run, out, tuple(formats)), needs_s=90)
            if exp is None:
                continue
            arts = exp["report"]["artifacts"]
            m["artifacts"] = [_artifact_row(a) for a in arts]
            servable = [a["name"] for a in arts if a["servable"]]
            gpu_servable = [n for n in servable if n in GPU_ARTIFACTS]
            if not gpu_servable:
                parts.rows.append(
                    {
                        "part": f"{key}/gate",
                        "status": "failed",
                        "seconds": 0.0,
                        "reason": "no GPU artifact passed its gate: "
                        + "; ".join(f"{a['name']}: {a['reason']}" for a in arts if a["name"] in GPU_ARTIFACTS),
                    }
                )
            bundle = Path(exp["bundle"])
            m["served"] = parts.run(f"{key}/serve", lambda b=bundle, s=servable: serve(b, out, s), needs_s=60)
            m["timing"] = parts.run(f"{key}/timing", lambda b=bundle, s=servable: timing(b, s), needs_s=30)
    report["parts"] = parts.rows
    report["duration_s"] = round(time.monotonic() - parts.t0, 1)
    report["failed"] = [r["part"] for r in parts.rows if r["status"] == "failed"]
    return report


def _artifact_row(a: dict[str, Any]) -> dict[str, Any]:
    per = a.get("gate", {}).get("per_batch", {})
    return {
        "name": a["name"],
        "servable": a["servable"],
        "reason": a.get("reason"),
        "gate": {
            b: {k: round(v, 5) for k, v in m.items() if k in ("agreement", "cos_min", "acc_delta")}
            for b, m in per.items()
        },
        "latency_ms_export": a.get("latency_ms"),
    }


def render(report: dict[str, Any], command: str) -> str:
    env = report["environment"]
    lines = [
        "## GPU smoke check",
        "",
        f"`{command}` on {report['started_utc']} UTC, {report['duration_s']:.0f} s: **{report['verdict']}**.",
        "",
        "| installed | found |",
        "|---|---|",
    ]
    drv = env.get("driver", {})
    lines.append(
        f"| NVIDIA driver | {drv.get('driver') or '-'} (CUDA {drv.get('driver_cuda', '-')}) {drv.get('reason', '')} |"
    )
    for g in drv.get("gpus", []):
        lines.append(f"| GPU | {g['name']}, compute capability {g['compute_capability']}, {g['memory_gib']} GiB |")
    t = env.get("torch", {})
    lines.append(
        f"| torch | {t.get('version')} (CUDA {t.get('cuda')}, cuDNN {t.get('cudnn')}), "
        f"GPU usable: {t.get('cuda_available')} |"
    )
    o = env.get("onnxruntime", {})
    ort_state = "CUDA provider works" if o.get("cuda_ok") else o.get("reason", "")
    lines.append(f"| ONNX Runtime | {o.get('distributions')}, providers {o.get('providers')}: {ort_state} |")
    r = env.get("tensorrt", {})
    lines.append(f"| TensorRT | {r.get('tensorrt') or '-'}: {'usable' if r.get('ok') else r.get('reason', '')} |")
    lines.append(f"| cuda-python | {env.get('cuda_python') or '-'} |")
    lines += ["", "| part | status | seconds | reason |", "|---|---|---|---|"]
    for row in report["parts"]:
        lines.append(f"| {row['part']} | {row['status']} | {row['seconds']} | {row['reason'] or ''} |")
    for key, m in report["models"].items():
        lines += ["", f"### {key} (224 px)", ""]
        lines += [
            "| artifact | servable | gate agreement (b1/b7/b32) | served answer | ms b1 | ms b32 | img/s b32 | "
            "speed-up vs ORT CPU FP32 (b1/b32) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        timing_rows, served = m.get("timing") or {}, m.get("served") or {}
        for a in m.get("artifacts", []):
            agree = "/".join(f"{a['gate'].get(b, {}).get('agreement', float('nan')):.4f}" for b in ("1", "7", "32"))
            s = served.get(a["name"], {})
            answer = s.get("error") or (f"{s['top1']} ({s['device']})" if s else "-")
            tr = timing_rows.get(a["name"], {})
            speed = f"{tr.get('speedup_b1', '-')} / {tr.get('speedup_b32', '-')}"
            state = "yes" if a["servable"] else f"no: {a['reason']}"
            lines.append(
                f"| {a['name']} | {state} | {agree} | {answer} | {tr.get('ms_b1', '-')} | "
                f"{tr.get('ms_b32', '-')} | {tr.get('img_per_s_b32', '-')} | {speed} |"
            )
        if "auto" in served:
            lines += [
                "",
                f"`--artifact auto` served {served['auto'].get('artifact')} on {served['auto'].get('device')}.",
            ]
    return "\n".join(lines) + "\n"


def write_section(report: dict[str, Any], md: str, results: Path) -> str:
    """Write the BENCHMARKS.md section; a run without a GPU never replaces a recorded GPU run."""
    results.mkdir(parents=True, exist_ok=True)
    section, raw = results / "gpu_smoke.md", results / "gpu_smoke.json"
    if not report["gpu"] and raw.is_file() and json.loads(raw.read_text()).get("gpu"):
        return f"kept the recorded GPU run in {section} (this machine has no GPU)"
    if not report["gpu"]:
        md = (
            "## GPU smoke check\n\nNot run on a GPU yet. `make gpu-check` (python benchmarks/gpu_smoke.py) on a "
            "machine with an NVIDIA GPU trains, exports, gates, serves and times ViT-T and ViT-S at 224 px with "
            "every GPU artifact it can build (ONNX Runtime CUDA FP16; TensorRT FP16/INT8 where TensorRT is "
            f"installed) and replaces this section. Last attempt, {report['started_utc']} UTC: "
            f"{report['verdict']}.\n"
        )
    section.write_text(md)
    raw.write_text(json.dumps(report, indent=2, default=str))
    return f"wrote {section}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu_smoke"), help="report folder")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: vit_tiny,vit_small")
    ap.add_argument("--quick", action="store_true", help="ViT-T only, a shorter training run")
    ap.add_argument("--budget-s", type=float, default=450, help="parts that would not finish in time are skipped")
    ap.add_argument("--results", default=str(RESULTS), help="where the BENCHMARKS.md section goes")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = ("vit_tiny",) if args.quick else tuple(m for m in args.models.split(",") if m)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = smoke(out, models, args.budget_s, args.quick)
    command = "python benchmarks/gpu_smoke.py" + (" --quick" if args.quick else "")
    md = render(report, command)
    (out / "gpu_smoke.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu_smoke.md").write_text(md)
    print(md)
    print(f"report: {out / 'gpu_smoke.md'}; {write_section(report, md, Path(args.results))}")
    if report["failed"]:
        print("failed parts: " + ", ".join(report["failed"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
