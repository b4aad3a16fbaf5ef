"""Runtime latency and accuracy: PyTorch eager vs ONNX Runtime FP32 vs each INT8 flavour, on a trained ViT at 224 px.

The model is a real student, so INT8's accuracy cost is real: ViT-T (patch 16, 224 px, 3 channels) trained once
with `tinymim train` on the built-in Fashion-MNIST (upsampled to 224 px) and cached outside the repository
(--cache, default ~/.cache/tinymim/bench; the training command is printed and recorded). Accuracy is top-1 on
held-out images (Fashion-MNIST's official test split, class-balanced), with each image's logits alone vs inside a
batch of 8 (batch independence: the export gate's second check).

Every artifact comes from export's own code: torch.onnx export, onnxslim (the portable graph that is quantized),
ONNX Runtime's transformer fusion (FP32 only), ``export.quantize`` recipes (static) and dynamic quantization.
Latency: medians of calls interleaved round-robin (A B C A B C ...) through serve/'s ONNX Runtime wrapper, batch
1 and 8, the same intra-op threads for every candidate including PyTorch. Where the time goes: ONNX Runtime's
profiler, per op type, for the fastest FP32 graph and the shipped static INT8 at batch 8.

    python benchmarks/runtime_latency.py                  # ViT-T, shipped recipes + the recipe search (~15 min)
    python benchmarks/runtime_latency.py --quick          # ViT-T, shipped artifacts only, fewer images/repeats
    python benchmarks/runtime_latency.py --models vit_tiny,vit_small
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinymim" / "bench"
# The students, trained with `tinymim train` in two stages (progressive resizing, as FixRes / DeiT fine-tunes at a
# higher resolution): from scratch at 112 px (49 tokens, ~5x cheaper per image), then fine-tuned at 224 px with
# the position embeddings interpolated by `--init`. Flags of each stage; {prev} is the previous stage's run. ViT-T's
# stages are sized to take <= 10 min each on ONE CPU core (the accuracy is modest; INT8's loss is measured against it).
COMMON = ["--in-chans", "3", "--limit-val", "1000", "--layer-decay", "1", "--no-augment", "--no-progress"]
COMMON += ["--checkpoint-every-steps", "10"]
STAGES = {
    "vit_tiny": [
        ["--arch", "vit_tiny", "--img-size", "112", "--limit-train", "2500", "--epochs", "1", "--batch-size", "64"]
        + ["--lr", "1e-3", "--warmup-epochs", "0.1"],
        ["--init", "{prev}", "--img-size", "224", "--limit-train", "512", "--epochs", "1", "--batch-size", "32"]
        + ["--lr", "3e-4", "--warmup-epochs", "0.1", "--limit-val", "200"],
    ],
    "vit_small": [
        ["--arch", "vit_small", "--img-size", "112", "--limit-train", "8000", "--epochs", "2", "--batch-size", "128"]
        + ["--lr", "1e-3", "--warmup-epochs", "0.2"],
        ["--init", "{prev}", "--img-size", "224", "--limit-train", "2000", "--epochs", "1", "--batch-size", "64"]
        + ["--lr", "3e-4", "--warmup-epochs", "0.1"],
    ],
}


def _cpu() -> dict[str, str]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line for line in info.splitlines() if line.startswith(("flags", "Features"))), "")
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return {
        "cpu": name,
        "cores": str(len(os.sched_getaffinity(0))),
        "avx512_vnni": str("avx512_vnni" in flags),
        "avx_vnni": str(" avx_vnni" in flags),
    }


def trained_student(key: str, cache: Path) -> tuple[Path, list[str]]:
    """The cached checkpoint of ``key`` (``vit_tiny``: 224 px; ``vit_tiny@112``: its first stage only, 112 px);
    missing stages are trained (or resumed) now with `tinymim train`."""
    arch, _, px = key.partition("@")
    stages = STAGES[arch] if not px else STAGES[arch][: 1 if px == "112" else len(STAGES[arch])]
    commands, prev = [], None
    for i, flags in enumerate(stages):
        run = cache / f"{arch}_stage{i + 1}"
        args = COMMON + [f.replace("{prev}", str(prev)) for f in flags] + ["--output", str(run)]  # a stage's flags win
        commands.append(" ".join(["tinymim", "train", *args]))
        started = (run / "last").exists() or (run / ".last.old").exists()
        if not started:
            print(f"training the {key} student, stage {i + 1} (cached in {run}):\n  {commands[-1]}", flush=True)
        # --resume finishes an interrupted stage and is a no-op for a finished one
        cmd = [sys.executable, "-m", "tinymim_cli", "train", *(["--resume", str(run)] if started else args)]
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        prev = run
    return prev, commands


def static_recipes(search: bool, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """{name: StaticRecipe}: the shipped recipe first, then (``search``) the variants it was chosen from, or only
    the variants whose short key (RECIPE_KEYS) is in ``only``."""
    from export.quantize import DEFAULT_RECIPE, StaticRecipe

    variants = {
        "all-int8-requant": (
            "static, everything INT8, outputs re-quantized (before)",
            StaticRecipe(keep_float=(), float_outputs=False),
        ),
        "all-int8": ("static, everything INT8", StaticRecipe(keep_float=())),
        "requant": ("static, outputs re-quantized (QLinearMatMul)", DEFAULT_RECIPE.replace(float_outputs=False)),
        "qoperator": ("static, QOperator format", DEFAULT_RECIPE.replace(quant_format="qoperator")),
        "symmetric": ("static, symmetric activations", DEFAULT_RECIPE.replace(symmetric_activations=True)),
        "per-tensor": ("static, per-tensor weights", DEFAULT_RECIPE.replace(per_channel=False)),
        "head-float": ("static, head float", DEFAULT_RECIPE.replace(keep_float=("attention", "head"))),
        "head-patch-float": (
            "static, head + patch embedding float",
            DEFAULT_RECIPE.replace(keep_float=("attention", "head", "patch_embed")),
        ),
        "percentile": ("static, percentile calibration", DEFAULT_RECIPE.replace(calibration="percentile")),
        "entropy": ("static, entropy calibration", DEFAULT_RECIPE.replace(calibration="entropy")),
    }
    unknown = set(only) - set(variants)
    if unknown:
        raise SystemExit(f"unknown --recipes {sorted(unknown)}; known: {', '.join(variants)}")
    out = {"static (shipped recipe)": DEFAULT_RECIPE}
    out |= {name: r for key, (name, r) in variants.items() if (search and not only) or key in only}
    return out


def accuracy(infer: Any, x: np.ndarray, y: np.ndarray, ref: np.ndarray, alone: int) -> dict[str, float]:
    """Top-1 on held-out images at batch 8, agreement with PyTorch, and batch-1 vs batch-8 logits."""
    from export.gate import DEFAULT_THRESHOLDS, batch_independence, compare, run_batched

    in_batch = run_batched(infer, x, 8)
    m = compare(in_batch, ref, y)
    bi = batch_independence({1: run_batched(infer, x[:alone], 1), 8: in_batch[:alone]}, 1e-3)
    t = DEFAULT_THRESHOLDS["int8"]  # the export gate's INT8 checks, applied to the same figures
    accurate = m["agreement"] >= t.min_agreement and m["acc_delta"] >= -t.max_acc_drop and m["cos_min"] >= t.min_cosine
    return {
        "top1": 100 * m["accuracy"],
        "delta_pts": m["acc_delta"],
        "agreement": 100 * m["agreement"],
        "cos_min": m["cos_min"],
        "batch_rel_diff": bi["max_rel_diff"],
        "batch_flips": bi["flips"],
        "gate_checks": {"accuracy": accurate, "batch_independence": bool(bi["passed"])},
    }


def op_profile(path: Path, x: np.ndarray, threads: int, runs: int) -> dict[str, Any]:
    """Mean ms per op type over ``runs`` calls, from ONNX Runtime's own profiler (same session settings)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "p")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(runs + 2):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    runs_ms = sorted(e["dur"] / 1e3 for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    by_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"] / 1e3
    scale = 1.0 / (runs + 2)
    return {"run_ms_median": runs_ms[len(runs_ms) // 2], "op_ms": {k: v * scale for k, v in by_op.most_common()}}


def bench_model(key: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from export.latency import interleaved_latency
    from export.onnx_export import export_onnx
    from export.optimize import fuse_transformer_graph, slim_graph
    from export.quantize import quantize_dynamic_int8, quantize_static_qdq
    from export.source import load_eval_set, load_source, serve_inputs, torch_reference
    from serve.runtimes.onnxruntime import OnnxRuntime
    from tinymim.card import ModelCard

    if key in args.checkpoints:
        run, train_cmd = args.checkpoints[key], []
    else:
        run, train_cmd = trained_student(key, args.cache)
    source = load_source(run)
    card: ModelCard = source.card
    ev = load_eval_set(card, None, eval_images=args.eval_images, calib_images=args.calib_images)
    x, calib = serve_inputs(card, ev.images), serve_inputs(card, ev.calibration)
    torch.set_num_threads(args.threads)
    ref = torch_reference(source, ev.images)
    shape = tuple(card.preprocess.input_size)
    model = source.model
    work = Path(tempfile.mkdtemp(prefix=f"tinymim-bench-{key}-"))
    export_onnx(model, work / "exported.onnx", input_shape=shape, max_batch=32)
    paths = {"ORT FP32 (onnxslim graph)": work / "slim.onnx", "ORT FP32 (ORT transformer fusion)": work / "fused.onnx"}
    slim_graph(work / "exported.onnx", paths["ORT FP32 (onnxslim graph)"])
    heads, width = model.blocks[0].attn.num_heads, model.embed_dim
    fuse_transformer_graph(work / "exported.onnx", work / "fused.onnx", num_heads=heads, hidden_size=width)
    quant: dict[str, Any] = {}
    build_s: dict[str, float] = {}
    for i, (name, recipe) in enumerate(static_recipes(not args.quick, args.recipes).items()):
        t0 = time.perf_counter()
        paths[name] = work / f"static{i}.onnx"
        quant[name] = quantize_static_qdq(work / "slim.onnx", paths[name], calib, recipe=recipe, work_dir=work)
        build_s[name] = round(time.perf_counter() - t0, 1)
    paths["dynamic INT8"] = work / "dynamic.onnx"
    quant["dynamic INT8"] = quantize_dynamic_int8(work / "slim.onnx", paths["dynamic INT8"])
    runtimes = {name: OnnxRuntime(p, max_batch=64, threads=args.threads) for name, p in paths.items()}

    def torch_infer(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    fns = {"PyTorch eager": torch_infer, **{n: r.infer for n, r in runtimes.items()}}
    acc = {name: accuracy(fn, x, ev.labels, ref, args.alone_images) for name, fn in fns.items()}
    lat = interleaved_latency(fns, input_shape=shape, batch_sizes=(1, 8), repeats=args.repeats, warmup=2)
    fp32 = min(
        ("ORT FP32 (onnxslim graph)", "ORT FP32 (ORT transformer fusion)"), key=lambda n: lat[n]["8"] + lat[n]["1"]
    )
    x8 = np.ascontiguousarray(x[:8])
    profile = {n: op_profile(paths[n], x8, args.threads, args.profile_runs) for n in (fp32, "static (shipped recipe)")}
    for r in runtimes.values():
        r.close()
    return {
        "checkpoint": str(run),
        "arch": f"{card.arch} {card.arch_kwargs}",
        "input_size": list(shape),
        "train_commands": train_cmd,
        "reference_top1": 100 * float((ref.argmax(1) == ev.labels).mean()),
        "eval_images": len(x),
        "calib_images": len(calib),
        "fp32_baseline": fp32,
        "accuracy": acc,
        "latency_ms": lat,
        "quantization": quant,
        "build_s": build_s,
        "profile_batch8": profile,
    }


def _trained(run: Path) -> str:
    """How a checkpoint was trained, from its model card (when the card is on this machine)."""
    card = next((run / d / "card.json" for d in ("best", "last", ".") if (run / d / "card.json").exists()), None)
    if card is None:
        return " (its model card records how it was trained)"
    d = json.loads(card.read_text())
    cfg, t = d["training"].get("config", {}), d["training"]
    parts = [f"`tinymim {t.get('command', 'train')}`", f"{d['data'].get('train_size')} training images"]
    parts += [f"{k.replace('_', ' ')} {cfg[k]}" for k in ("epochs", "batch_size", "lr", "init") if cfg.get(k)]
    if d.get("metrics", {}).get("top1") is not None:
        parts.append(f"validation top-1 {d['metrics']['top1']:.1f}% on {d['metrics'].get('n')} images")
    return " (from its model card: " + ", ".join(parts) + ")"


def _is_int8(name: str) -> bool:
    return name.startswith(("static", "dynamic"))


def _gate(a: dict[str, Any]) -> str:
    failed = [k.replace("_", " ") for k, ok in a["gate_checks"].items() if not ok]
    return "passes" if not failed else "fails " + " + ".join(failed)


def _x(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def render(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: one subsection per model, each with the machine and command it was measured by."""
    lines = [
        "## Runtime latency and accuracy (CPU): PyTorch eager vs ONNX Runtime FP32 vs INT8",
        "",
        "Target (issue 10): INT8 >= 2x ONNX Runtime FP32 at batch 8 with <= 0.5 points top-1 loss, and batch-"
        "independent. Summary (batch 8, speed-up vs the faster ORT FP32 graph; details and commands below):",
        "",
        "| model | input | FP32 top-1 % | shipped static INT8: speed-up, delta pts, gate | fastest INT8 passing the "
        "gate | dynamic INT8 (never shipped: batch-dependent) |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        lat, acc, base = r["latency_ms"], r["accuracy"], r["fp32_baseline"]
        ship, dyn = "static (shipped recipe)", "dynamic INT8"
        passing = [n for n in lat if _is_int8(n) and all(acc[n]["gate_checks"].values())]
        best = min(passing, key=lambda n: lat[n]["8"]) if passing else None
        c, h, w = r["input_size"]
        lines.append(
            f"| {key} | {h}x{w}x{c} | {r['reference_top1']:.2f} | {_x(lat[base]['8'], lat[ship]['8'])}, "
            f"{acc[ship]['delta_pts']:+.2f}, {_gate(acc[ship])} | "
            + (f"{best}: {_x(lat[base]['8'], lat[best]['8'])}, {acc[best]['delta_pts']:+.2f}" if best else "none")
            + f" | {_x(lat[base]['8'], lat[dyn]['8'])}, {acc[dyn]['delta_pts']:+.2f}, {_gate(acc[dyn])} |"
        )
    for key, r in results.items():
        lat, acc, base = r["latency_ms"], r["accuracy"], r["fp32_baseline"]
        shipped = "static (shipped recipe)"
        c, h, w = r["input_size"]
        how = (
            "Trained once (cached outside the repository) by: "
            + "; then ".join(f"`{c.split(' --output')[0]}`" for c in r["train_commands"])
            + "."
            if r["train_commands"]
            else f"Checkpoint `{r['checkpoint']}`{_trained(Path(r['checkpoint']))}."
        )
        meta = r["meta"]
        m = meta["machine"]
        lines += [
            "",
            f"### {key}: {r['arch']}, {h}x{w} px, {c} channel(s), trained on the built-in Fashion-MNIST",
            "",
            f"Command: `{meta['command']}`",
            "",
            f"Machine: {m['cpu']}, {m['cores']} core(s) visible, AVX512-VNNI {m['avx512_vnni']}, AVX-VNNI "
            f"{m['avx_vnni']}; {meta['threads']} intra-op thread(s) for every candidate; medians of "
            f"{meta['repeats']} interleaved calls; 1-min load average before/after "
            f"{meta['loadavg_1min_before_after']} (shared machine: ratios are fairer than absolutes); measured "
            f"{meta['when']}. torch {meta['tools']['torch']}, onnxruntime {meta['tools']['onnxruntime']}.",
            "",
            how,
            "",
            f"PyTorch FP32 top-1 {r['reference_top1']:.2f}% on {r['eval_images']} held-out images (Fashion-MNIST "
            f"test split); static INT8 calibrated on {r['calib_images']} training images. Speed-ups are against "
            f"the faster ONNX Runtime FP32 graph here ({base}). Batch-mates diff: max |logits alone - logits in a "
            "batch of 8| / max |logit| (the gate refuses > 1e-3 for INT8).",
            "",
            "| candidate | top-1 % | delta vs PyTorch (pts) | agreement % | batch-mates diff | INT8 gate | "
            "batch 1 ms | speed-up b1 | batch 8 ms | speed-up b8 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in lat:
            a, t = acc[name], lat[name]
            bold = "**" if name == shipped else ""
            gate = _gate(a) if _is_int8(name) else ""
            lines.append(
                f"| {bold}{name}{bold} | {a['top1']:.2f} | {a['delta_pts']:+.2f} | {a['agreement']:.1f} | "
                f"{a['batch_rel_diff']:.1e} | {gate} | {t['1']:.1f} | {_x(lat[base]['1'], t['1'])} | {t['8']:.1f} | "
                f"{bold}{_x(lat[base]['8'], t['8'])}{bold} |"
            )
        ship = lat[shipped]["8"]
        passing = [n for n in lat if _is_int8(n) and all(acc[n]["gate_checks"].values())]
        best = min(passing, key=lambda n: lat[n]["8"]) if passing else None
        lines += [
            "",
            (
                f"Fastest INT8 that passes both gate checks: {best}, {_x(lat[base]['8'], lat[best]['8'])} ORT FP32 "
                f"at batch 8, {acc[best]['delta_pts']:+.2f} points top-1."
                if best
                else "No INT8 candidate passes both gate checks here."
            ),
            "",
            f"Shipped static INT8 at batch 8: **{_x(lat[base]['8'], ship)} ORT FP32**, "
            f"{_x(lat['PyTorch eager']['8'], ship)} PyTorch eager, {acc[shipped]['delta_pts']:+.2f} points top-1 "
            f"(target >= 2x FP32 with <= 0.5 points loss: "
            f"{'met' if lat[base]['8'] / ship >= 2 and acc[shipped]['delta_pts'] >= -0.5 else 'missed'}).",
            "",
            "Where the time goes at batch 8 (ONNX Runtime profiler, ms per call by op type; kernels only):",
            "",
            "| op type | " + " | ".join(r["profile_batch8"]) + " |",
            "|---|" + "---|" * len(r["profile_batch8"]),
        ]
        profs = list(r["profile_batch8"].values())
        ops = sorted({k for p in profs for k in p["op_ms"]}, key=lambda k: -max(p["op_ms"].get(k, 0) for p in profs))
        for op in ops:
            if max(p["op_ms"].get(op, 0) for p in profs) >= 0.5:
                lines.append(f"| {op} | " + " | ".join(f"{p['op_ms'].get(op, 0):.1f}" for p in profs) + " |")
        lines.append(
            "| whole run (median) | " + " | ".join(f"{p['run_ms_median']:.1f}" for p in profs) + " |",
        )
        lines += ["", _amdahl(r["profile_batch8"][base], r["profile_batch8"][shipped])]
    lines.append("")
    return "\n".join(lines)


# ONNX Runtime kernels that run the integer GEMMs of a quantized graph (QDQ after fusion, QOperator, dynamic).
INTEGER_GEMMS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger", "QGemm", "QLinearConv", "ConvInteger")


def _amdahl(fp32: dict[str, Any], int8: dict[str, Any]) -> str:
    """What the profile says about 2x: the float remainder of the INT8 run bounds its speed-up (Amdahl)."""
    total = sum(int8["op_ms"].values())
    gemm = sum(int8["op_ms"].get(k, 0.0) for k in INTEGER_GEMMS)
    rest = total - gemm
    fp32_total = sum(fp32["op_ms"].values())
    top = sorted(((v, k) for k, v in int8["op_ms"].items() if k not in INTEGER_GEMMS), reverse=True)[:5]
    return (
        f"In the shipped INT8 run the integer GEMMs take {gemm:.1f} of {total:.1f} ms of kernel time; the float "
        f"remainder ({', '.join(f'{k} {v:.1f}' for v, k in top)}, ...) takes {rest:.1f} ms, so even free integer "
        f"GEMMs would give at most {fp32_total / max(rest, 1e-9):.2f}x the FP32 kernel time ({fp32_total:.1f} ms). "
        "Beyond that bound, INT8 needs the float remainder itself to get faster (fused, or run in INT8), not faster "
        "GEMMs; in this graph ONNX Runtime ran those ops as the float kernels listed above."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shipped recipes only, fewer images and repeats")
    ap.add_argument(
        "--models",
        default=None,
        help="comma-separated: vit_tiny, vit_small (224 px), vit_tiny@112 (112 px); default vit_tiny, none with "
        "--checkpoint",
    )
    ap.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        help="also bench this trained run folder (e.g. the quickstart's student); repeatable",
    )
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where trained students are kept")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for every candidate")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per candidate and batch size")
    ap.add_argument("--eval-images", type=int, default=None, help="held-out images for accuracy")
    ap.add_argument("--calib-images", type=int, default=256, help="calibration images for static INT8")
    ap.add_argument("--alone-images", type=int, default=200, help="images also run alone (batch independence)")
    ap.add_argument("--profile-runs", type=int, default=5)
    ap.add_argument(
        "--recipes",
        type=lambda v: tuple(k for k in v.split(",") if k),
        default=(),
        help="only these static variants besides the shipped one (all-int8-requant, all-int8, requant, qoperator, "
        "symmetric, per-tensor, head-float, head-patch-float, percentile, entropy); default: all, none with --quick",
    )
    ap.add_argument("--render-only", action="store_true", help="rewrite runtime_latency.md from the JSON; no run")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of runtime_latency.{json,md}")
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((args.results / "runtime_latency.json").read_text())["results"]
        (args.results / "runtime_latency.md").write_text(render(results))
        return 0
    args.repeats = args.repeats or (4 if args.quick else 10)
    args.eval_images = args.eval_images or (200 if args.quick else 1000)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime
    import torch

    args.checkpoints = {p.name if p.name not in ("best", "last") else p.parent.name: p for p in args.checkpoint}
    models = args.models if args.models is not None else ("" if args.checkpoint else "vit_tiny")
    keys = [k for k in models.split(",") if k] + list(args.checkpoints)
    flags = "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
    out = args.results / "runtime_latency.json"
    # A run replaces its own models' entries and keeps the others (each entry records its own command and machine).
    kept = json.loads(out.read_text()).get("results", {}) if out.exists() else {}
    results = {k: v for k, v in kept.items() if isinstance(v, dict) and "meta" in v}
    for key in keys:
        load_before = os.getloadavg()[0]
        results[key] = bench_model(key, args)
        results[key]["meta"] = {
            "machine": _cpu(),
            "tools": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
            "command": "python benchmarks/runtime_latency.py" + flags,
            "threads": args.threads,
            "repeats": args.repeats,
            "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
    args.results.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2))
    (args.results / "runtime_latency.md").write_text(render(results))
    print(render({k: results[k] for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
