"""Serving overhead and batching efficiency of `tinymim serve` on this CPU.

Builds a ViT-Tiny bundle (timm ``vit_tiny_patch16_224``, 224 px, 10 classes, RANDOM INIT: timing only,
predictions are meaningless), exports it to ONNX FP32 (opset 17, dynamic batch), starts a real
``tinymim serve`` subprocess on 127.0.0.1, and alternates, round after round, windows of

1. the runtime alone in this process (batch 1; batches 8 and 16 for the best throughput), and
2. the served model under async httpx load at concurrency 1 and 16, with a 224 px JPEG through /v1/classify
   (what an app sends: the server decodes and preprocesses) and with a preprocessed FP32 tensor through the
   v2 binary protocol (the service's own overhead alone),

so both sides see the same background load on a shared machine. Reports: overhead = served p50 (c=1) -
runtime-alone p50 (+ preprocessing p50 for JPEG), target <= max(2 ms, 10 % of runtime p50); throughput ratio
= served req/s at c=16 / best runtime-alone samples/s in the same round (median over rounds), target >= 0.8.

    python benchmarks/serve_latency.py            # ~3 minutes
    python benchmarks/serve_latency.py --quick    # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]

from serve.bench.online import load_images  # noqa: E402
from serve.bench.stats import summarize  # noqa: E402
from serve.process import ServerProcess  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def build_bundle(root: Path, max_batch: int) -> Path:
    import timm
    import torch

    from serve.bundle import Artifact, Bundle, TensorSpec, sha256_file
    from tinymim.card import Preprocess

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    onnx_path = root / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 224, 224),),
            str(onnx_path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    Bundle(
        model_name="vit-tiny",
        labels=[f"class_{i}" for i in range(10)],
        preprocess=Preprocess((3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic", 0.875),
        input=TensorSpec("input", "FP32", [-1, 3, 224, 224]),
        output=TensorSpec("logits", "FP32", [-1, 10]),
        max_batch=max_batch,
        artifacts=[Artifact("onnx-fp32", "model.onnx", "onnx", "fp32", "onnxruntime", sha256_file(onnx_path))],
        source={"note": "benchmarks/serve_latency.py: timm vit_tiny_patch16_224, random init"},
    ).save(root)
    return root


async def served_level(url: str, req: tuple[str, bytes, dict], concurrency: int, duration: float) -> dict:
    """``concurrency`` clients sending ``req`` back to back for ``duration`` s: latencies and req/s."""
    path, body, headers = req
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:
        await asyncio.gather(*(c.post(path, content=body, headers=headers) for _ in range(concurrency)))  # connect
        t_end = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                r = await c.post(path, content=body, headers=headers)
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"latencies": lat, "errors": errors, "rps": len(lat) / wall}


def tensor_request(x: np.ndarray) -> tuple[str, bytes, dict]:
    """Preprocessed FP32 [1,3,224,224] through the v2 binary protocol."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return "/v2/models/vit-tiny/infer", head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


async def paired_c1(
    url: str, runtime, x: np.ndarray, reqs: dict[str, tuple], duration: float
) -> dict[str, list[float]]:
    """Concurrency 1, paired: runtime-alone call, then one served request, back to back, per path.

    Pairs measured milliseconds apart see the same background load, so their difference is the service's
    overhead even on a busy shared machine."""
    out: dict[str, list[float]] = {
        "runtime": [],
        "v1_server_internal": [],
        **{k: [] for k in reqs},
        **{f"{k}_diff": [] for k in reqs if k != "floor"},
    }
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        t_end = time.perf_counter() + duration
        while time.perf_counter() < t_end:
            for key, (path, body, headers) in reqs.items():
                t0 = time.perf_counter()
                runtime.infer(x)
                t1 = time.perf_counter()
                if body is None:
                    r = await c.get(path, headers=headers)
                else:
                    r = await c.post(path, content=body, headers=headers)
                t2 = time.perf_counter()
                if r.status_code == 200 and key == "floor":
                    out["floor"].append(t2 - t1)
                elif r.status_code == 200:
                    out["runtime"].append(t1 - t0)
                    out[key].append(t2 - t1)
                    out[f"{key}_diff"].append((t2 - t1) - (t1 - t0))
                    if path.startswith("/v1"):  # server's own view: total - preprocess - inference
                        t = r.json()["timing"]
                        out["v1_server_internal"].append(
                            (t["total_ms"] - t["preprocess_ms"] - t["inference_ms"]) / 1000
                        )
    return out


def offline_window(runtime, x: np.ndarray, duration: float) -> list[float]:
    out, t_end = [], time.perf_counter() + duration
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        runtime.infer(x)
        out.append(time.perf_counter() - t0)
    return out


def machine() -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "unknown CPU"
    )
    import onnxruntime

    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores available (shared with other jobs), "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter run (~1 minute)")
    args = ap.parse_args()
    rounds, window = (2, 1.5) if args.quick else (5, 3.0)
    max_batch, big = 16, (8, 16)
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    from serve.bundle import load_bundle
    from serve.preprocess import Preprocessor
    from serve.runtimes import open_runtime

    pooled: dict[str, list[float]] = {
        k: []
        for k in (
            "runtime_b1",
            "preprocess",
            "v1_c1",
            "v2_c1",
            "v1_c1_diff",
            "v2_c1_diff",
            "v1_server_internal",
            "floor",
        )
    }
    ratios: dict[str, list[float]] = {"v1": [], "v2": []}
    per_round = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = build_bundle(tmp, max_batch)
        b = load_bundle(bundle)
        runtime = open_runtime(b, b.artifacts[0])  # same defaults as the server: all cores
        pre = Preprocessor.from_card(b.preprocess)
        jpeg = load_images(None, 224)[0]
        x1 = pre.batch([jpeg])
        for n in (1, *big):  # warm-up
            runtime.infer(np.repeat(x1, n, 0))
        server = ServerProcess(
            bundle,
            "--max-batch-size",
            str(max_batch),
            "--max-queue-delay-ms",
            "5",
            log_path=tmp / "server.log",
            cwd=REPO,
        ).wait_ready(180)
        url = server.url
        v1_req = ("/v1/classify?top_k=1", jpeg, {"Content-Type": "image/jpeg"})
        v2_req = tensor_request(x1)
        try:
            for _ in range(2):  # warm the server's paths
                asyncio.run(served_level(url, v1_req, 16, 0.5))
                asyncio.run(served_level(url, v2_req, 16, 0.5))
            # Rounds alternate runtime-alone and served windows, so both see the same background load on this
            # shared machine; ratios are taken within a round, then the median across rounds is reported.
            for _round in range(rounds):
                for _ in range(20):
                    t0 = time.perf_counter()
                    pre(jpeg)
                    pooled["preprocess"].append(time.perf_counter() - t0)
                paired = asyncio.run(
                    paired_c1(
                        url,
                        runtime,
                        x1,
                        {"v1_c1": v1_req, "v2_c1": v2_req, "floor": ("/v2/health/live", None, {})},
                        2 * window,
                    )
                )
                pooled["runtime_b1"] += paired.pop("runtime")
                for k, v in paired.items():
                    pooled[k] += v
                best = 0.0
                for n in big:
                    lat = offline_window(runtime, np.repeat(x1, n, 0), window)
                    best = max(best, n * len(lat) / sum(lat))
                v1 = asyncio.run(served_level(url, v1_req, 16, 2 * window))
                v2 = asyncio.run(served_level(url, v2_req, 16, 2 * window))
                ratios["v1"].append(v1["rps"] / best)
                ratios["v2"].append(v2["rps"] / best)
                per_round.append(
                    {
                        "best_offline_samples_per_s": best,
                        "v1_c16_rps": v1["rps"],
                        "v2_c16_rps": v2["rps"],
                        "v1_c16": summarize(v1["latencies"]),
                        "v2_c16": summarize(v2["latencies"]),
                        "errors": {"v1": v1["errors"], "v2": v2["errors"]},
                    }
                )
            metrics = httpx.get(url + "/metrics").text
        finally:
            server.stop()
            runtime.close()

    rt = summarize(pooled["runtime_b1"])["p50_ms"]
    pre_p50 = summarize(pooled["preprocess"])["p50_ms"]
    budget = max(2.0, 0.1 * rt)
    rows = []
    for key, name, base in (
        ("v2", "v2 FP32 tensor, binary protocol", rt),
        ("v1", "v1 JPEG (server decodes + preprocesses)", rt + pre_p50),
    ):
        c1 = summarize(pooled[f"{key}_c1"])
        ratio = float(np.median(ratios[key]))
        # median of paired differences (served - runtime alone, measured back to back); JPEG also minus preprocessing
        overhead = summarize(pooled[f"{key}_c1_diff"])["p50_ms"] - (base - rt)
        rows.append(
            {
                "path": name,
                "baseline_ms": base,
                "served_p50_c1_ms": c1["p50_ms"],
                "p99_c1_ms": c1["p99_ms"],
                "overhead_ms": overhead,
                "overhead_unpaired_ms": c1["p50_ms"] - base,
                "overhead_ok": overhead <= budget,
                "rps_c16_median": float(np.median([pr[f"{key}_c16_rps"] for pr in per_round])),
                "throughput_ratio": ratio,
                "throughput_ratio_per_round": ratios[key],
                "throughput_ok": ratio >= 0.8,
            }
        )
    load_after = os.getloadavg()[0]
    result = {
        "machine": machine() + f"; 1-min load average {load_before:.1f} at start, {load_after:.1f} at end",
        "command": "python benchmarks/serve_latency.py" + (" --quick" if args.quick else ""),
        "model": "timm vit_tiny_patch16_224, 224 px, 10 classes, random init (timing only), ONNX FP32, "
        "served with --max-batch-size 16 --max-queue-delay-ms 5",
        "rounds": rounds,
        "window_s": window,
        "runtime_p50_b1_ms": rt,
        "preprocess_p50_ms": pre_p50,
        "best_offline_samples_per_s_median": float(np.median([pr["best_offline_samples_per_s"] for pr in per_round])),
        "overhead_budget_ms": budget,
        "rows": rows,
        "v1_server_internal_p50_ms": summarize(pooled["v1_server_internal"])["p50_ms"],
        "http_floor_p50_ms": summarize(pooled["floor"])["p50_ms"],
        "per_round": per_round,
        "batch_size_histogram": [ln for ln in metrics.splitlines() if ln.startswith("tinymim_batch_size_")],
    }
    (RESULTS / "serve_latency.json").write_text(json.dumps(result, indent=2, default=float))
    (RESULTS / "serve_latency.md").write_text(render(result))
    print(render(result))
    return 0


def render(r: dict) -> str:
    f = lambda v: f"{v:.2f}"  # noqa: E731
    lines = [
        "## Serving overhead and batching (benchmarks/serve_latency.py)",
        "",
        f"Machine: {r['machine']}.  ",
        f"Model: {r['model']}.  ",
        f"Command: `{r['command']}` ({r['rounds']} rounds alternating runtime-alone and served windows of "
        f"{r['window_s']} s; c=16 windows are twice as long).",
        "",
        f"Runtime alone (ONNX Runtime CPU, all cores, as the server): batch-1 p50 {f(r['runtime_p50_b1_ms'])} ms; best "
        f"batch throughput (batch 8 or 16) median {f(r['best_offline_samples_per_s_median'])} samples/s; JPEG decode + "
        f"preprocess {f(r['preprocess_p50_ms'])} ms/image.",
        "",
        "| path | served p50 c=1 | baseline (runtime alone) | "
        f"overhead, paired median (target <= {f(r['overhead_budget_ms'])} ms) "
        "| p99 c=1 | req/s c=16 | c=16 throughput / best offline (target >= 0.8) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['path']} | {f(row['served_p50_c1_ms'])} ms | {f(row['baseline_ms'])} ms | "
            f"{f(row['overhead_ms'])} ms ({'meets' if row['overhead_ok'] else 'misses'}) | {f(row['p99_c1_ms'])} ms | "
            f"{f(row['rps_c16_median'])} | "
            f"{row['throughput_ratio']:.2f} ({'meets' if row['throughput_ok'] else 'misses'}) |"
        )
    lines += [
        "",
        f"Inside the server (v1 timing breakdown: total - preprocess - inference, i.e. routing, queue hand-off, "
        f"thread hops, top-k and JSON) the p50 is {f(r['v1_server_internal_p50_ms'])} ms per request; the rest of the "
        "overhead is the HTTP client, the loopback and process wake-ups on the shared cores: a bare "
        f"GET /v2/health/live (no model, no body), measured the same way right after a runtime call, has a p50 of "
        f"{f(r['http_floor_p50_ms'])} ms on this machine during this run.",
        "Overhead = median over back-to-back pairs of (served request - runtime-alone call) at concurrency 1; "
        "the difference of the two p50 columns is noisier on a shared machine.",
        "Baseline of the v1 row = runtime p50 + offline preprocessing p50 (the service must decode the JPEG). "
        "The load client (httpx, async) shares the cores with the server, so served figures include its CPU use.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
