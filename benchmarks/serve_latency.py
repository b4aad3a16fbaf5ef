"""Serving latency and throughput measured with wrk: `tinymim serve` vs LitServe vs the runtime alone.

    apt-get install -y wrk                        # the C load generator (Debian/Ubuntu; brew install wrk on macOS)
    python benchmarks/serve_latency.py            # ~12 minutes on 2 cores: both models, 5 interleaved rounds
    python benchmarks/serve_latency.py --quick    # ~3 minutes: 2 rounds, short windows
    python benchmarks/serve_latency.py --models student28 --rounds 3   # one model; the other keeps its last result

Two models, ONNX FP32 with random weights (timing only; predictions are meaningless):
- ``student28``: the CPU quickstart's student, its shape read from the quickstart's settings (28 px, 1 channel),
  sent a real 28 x 28 Fashion-MNIST test image as PNG;
- ``vit_tiny224``: timm ``vit_tiny_patch16_224`` at 224 px, sent a 224 x 224 RGB PNG (~100 KB).

For each model, every server is started once (cold start = spawn -> first ready answer; it warms up as it
does for users) and then paused (SIGSTOP: a paused server costs the others nothing). Then rounds: for each
server in turn (the order rotates between rounds) the runtime alone in this process (ONNX Runtime, the
service's own runtime class and options: intra-op threads = usable cores, no spinning; batch 1, then batches
8/16/32 for the best throughput), and right after it the server, resumed and loaded by wrk with the same
image: 1 connection (``wrk -t1 -c1``) for p50/p99, then 16 connections (``wrk -t2 -c16``) for req/s and p99.
The target ratios are taken within each such pair (the same background load on a shared machine), then the
median over rounds is reported, as are the medians of the figures. wrk runs on the same 2 cores as the
server, as it would on a developer's machine: its CPU use is in every served figure.

Servers, all on the same ONNX model, runtime options and preprocessing code: ``tinymim serve`` with its
defaults (``--max-batch-size 32 --max-queue-delay-ms 5``); ``tinymim serve --workers 2`` (two processes,
one runtime thread each); LitServe (benchmarks/_litserve_app.py: batching on, 32 / 5 ms, ``fast_queue``).
Where the time goes: the server's own per-stage histograms (/metrics) over each window, and the CPU seconds
per request of the server's event-loop threads, its other threads (runtime, preprocessing) and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _serving import (  # noqa: E402
    ModelSpec,
    Neighbours,
    Proc,
    build_bundle,
    multipart,
    process_tree,
    run_wrk,
    stage_sums,
    wrk_available,
)

from serve.bench.stats import summarize  # noqa: E402
from serve.process import ServerProcess, free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
STAGES = ("decode", "preprocess", "queue", "compute", "encode")


def quickstart_student() -> ModelSpec:
    """The CPU quickstart's student, read from the quickstart's own settings (so this follows the quickstart)."""
    from compress.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
    from tinymim_cli.quickstart_config import SCALES

    teacher, distill = SCALES["cpu"]["teacher"], SCALES["cpu"]["distill"]
    return ModelSpec(
        arch=distill["student"],
        img_size=distill.get("student_img_size") or teacher["img_size"],
        patch_size=distill.get("student_patch_size") or teacher["patch_size"],
        depth=distill.get("student_depth"),
        embed_dim=distill.get("student_embed_dim"),
        num_heads=distill.get("student_num_heads"),
        in_chans=1,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        crop_pct=1.0,
    )


def vit_tiny224() -> ModelSpec:
    return ModelSpec(
        arch="vit_tiny", img_size=224, in_chans=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.875
    )


@dataclass(frozen=True)
class Model:
    what: str
    spec: Callable[[], ModelSpec]
    target_ratio: float  # the c=16 throughput target, as a share of the runtime's best offline batch


MODELS = {
    "student28": Model("the CPU quickstart's student (`tinymim quickstart --size cpu`)", quickstart_student, 0.6),
    "vit_tiny224": Model("timm vit_tiny_patch16_224", vit_tiny224, 0.9),
}
OVERHEAD_TARGET_MS = 0.8


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    kind: str  # "tinymim" | "litserve"
    args: tuple[str, ...] = ()
    src: str | None = None  # another checkout of tinymim to serve from (before/after comparisons)


def arms() -> list[Arm]:
    import litserve

    return [
        Arm("tinymim", "`tinymim serve`", "tinymim"),
        Arm("tinymim_w2", "`tinymim serve --workers 2`", "tinymim", ("--workers", "2")),
        Arm("litserve", f"LitServe {litserve.__version__} (batching on: 32, 5 ms; fast_queue)", "litserve"),
    ]


# ------------------------------------------------------------------------------------------------ inputs
def images(tmp: Path) -> dict[str, Path]:
    from PIL import Image

    from compress.data.builtin import load_fashion_mnist

    img, _ = load_fashion_mnist("test")[0]
    p28 = tmp / "fashion28.png"
    img.save(p28, format="PNG")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224] / 224
    rgb = np.stack([np.sin(6 * xx), np.cos(5 * yy), np.sin(4 * (xx + yy))], -1)
    arr = ((rgb + 1) * 110 + rng.integers(0, 24, (224, 224, 3))).clip(0, 255).astype(np.uint8)
    p224 = tmp / "photo224.png"
    Image.fromarray(arr).save(p224, format="PNG")
    return {"student28": p28, "vit_tiny224": p224}


# ------------------------------------------------------------------------------------------------ arms
class RuntimeAlone:
    """The service's runtime class with the service's defaults, in this process, no HTTP (one session per model)."""

    def __init__(self, bundle: Path, x1: np.ndarray) -> None:
        from serve.bundle import load_bundle
        from serve.runtimes import open_runtime

        b = load_bundle(bundle)
        self.rt = open_runtime(b, b.artifact("onnx-fp32"))
        self.x1 = x1
        for n in (1, 8, 16, 32):
            self.rt.infer(np.repeat(x1, n, 0))

    def measure(self, window: float) -> dict:
        """Batch-1 latency for 2/3 of ``window``, then batches 8/16/32 for 1/3 each: the best throughput."""
        lat, t_end = [], time.perf_counter() + window * 2 / 3
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            self.rt.infer(self.x1)
            lat.append(time.perf_counter() - t0)
        best = {"samples_per_s": 0.0}
        for n in (8, 16, 32):
            x = np.repeat(self.x1, n, 0)
            done, c0, t0 = 0, time.process_time(), time.perf_counter()
            while time.perf_counter() - t0 < window / 3:
                self.rt.infer(x)
                done += n
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if done / wall > best["samples_per_s"]:
                best = {"batch": n, "samples_per_s": done / wall, "cpu_ms_per_sample": 1000 * cpu / done}
        s = summarize(lat)
        return {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "best": best}

    def close(self) -> None:
        self.rt.close()


class Server:
    """One server arm, started fresh: ``tinymim serve`` or the LitServe app."""

    def __init__(self, arm: Arm, bundle: Path, tmp: Path) -> None:
        self.arm = arm
        t0 = time.perf_counter()
        if arm.kind == "tinymim":
            env = {"PYTHONPATH": arm.src} if arm.src else None
            self.proc = ServerProcess(bundle, *arm.args, log_path=tmp / f"{arm.key}.log", cwd=REPO, env=env)
            self.proc.wait_ready(300)
            self.url, self.pid, self.path = self.proc.url, self.proc.proc.pid, "/v1/classify?top_k=1"
        else:
            port = free_port()
            self.url, self.path = f"http://127.0.0.1:{port}", "/predict"
            cmd = [sys.executable, str(REPO / "benchmarks" / "_litserve_app.py"), str(bundle), str(port)]
            self.log = open(tmp / f"{arm.key}.log", "wb")
            self.popen = subprocess.Popen(
                cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
            )
            self.pid = self.popen.pid
            self._wait_litserve(300)
        self.cold_start_s = time.perf_counter() - t0
        self.cpu = Proc(self.pid)

    def _wait_litserve(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"LitServe exited with {self.popen.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"LitServe was not ready after {timeout} s; see {self.log.name}")

    def body(self, image: Path, tmp: Path) -> tuple[Path, str]:
        if self.arm.kind == "tinymim":
            return image, "image/png"
        data, ctype = multipart(image.read_bytes())
        path = tmp / f"{image.stem}.multipart"
        path.write_bytes(data)
        return path, ctype

    def pause(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT every process of the server: a paused server costs the others nothing."""
        for pid in process_tree(self.pid):
            try:
                os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.pause(False)
        if self.arm.kind == "tinymim":
            self.proc.stop()
            return
        os.killpg(self.popen.pid, signal.SIGTERM)  # LitServe's own worker processes are in this session
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self.log.close()


def drain(srv: Server, body: Path, ctype: str) -> None:
    """Wait until the requests a wrk run left behind are answered: one more request, queued behind them, answers.

    wrk stops counting when its window ends, but the server still answers what it had accepted (16 requests
    of a 60 ms model is a second of work); without this they would land in the next window's figures.
    """
    content = body.read_bytes()
    for _ in range(2):
        httpx.post(srv.url + srv.path, content=content, headers={"content-type": ctype}, timeout=120)


def served(srv: Server, image: Path, tmp: Path, window: float) -> dict:
    """One c=1 and one c=16 wrk window against a running server, with its stage split and CPU use."""
    body, ctype = srv.body(image, tmp)
    url = srv.url + srv.path
    run_wrk(url, body, ctype, connections=16, threads=2, seconds=1)  # wake it up: connections, caches
    out = {}
    for conns, threads in ((1, 1), (16, 2)):
        drain(srv, body, ctype)
        tinymim = srv.arm.kind == "tinymim"
        m0, c0 = stage_sums(srv.url) if tinymim else None, srv.cpu.cpu()
        w = run_wrk(url, body, ctype, connections=conns, threads=threads, seconds=window)
        m1, c1 = stage_sums(srv.url) if tinymim else None, srv.cpu.cpu()
        ok = max(1, w["requests"] - w["errors"])
        w["cpu_ms_per_request"] = {
            "event_loops": 1000 * (c1.main - c0.main) / ok,
            "other_threads": 1000 * (c1.other - c0.other) / ok,
        }
        if m0 and m1 and "compute_n" in m1:
            n = max(1.0, m1.get("compute_n", 0) - m0.get("compute_n", 0))
            w["server_ms"] = {s: 1000 * (m1.get(s, 0) - m0.get(s, 0)) / n for s in STAGES}
            bn = m1.get("batch_n", 0) - m0.get("batch_n", 0)
            w["batch_mean"] = (m1.get("batch_sum", 0) - m0.get("batch_sum", 0)) / bn if bn else None
        out[f"c{conns}"] = w
    return out


# ------------------------------------------------------------------------------------------------ run
def measure(
    model: str,
    bundle: Path,
    image: Path,
    tmp: Path,
    rounds: int,
    window: float,
    chosen: list[Arm],
    beside: Neighbours,
) -> dict:
    """Every server started once (cold start), then paused; rounds of windows, each server right after its own
    runtime-alone window (the pair sees the same background load), the others paused meanwhile."""
    from serve.bundle import load_bundle
    from serve.preprocess import Preprocessor

    x1 = Preprocessor.from_card(load_bundle(bundle).preprocess).batch([image.read_bytes()])
    runtime = RuntimeAlone(bundle, x1)
    servers: dict[str, Server] = {}
    try:
        for arm in chosen:
            print(f"  {model}: starting {arm.key}", flush=True)
            servers[arm.key] = Server(arm, bundle, tmp)
            servers[arm.key].pause(True)
        per_round = []
        for r in range(rounds):
            order = chosen[r % len(chosen) :] + chosen[: r % len(chosen)]
            rec = {}
            for arm in order:
                print(f"  {model} round {r + 1}/{rounds}: {arm.key}", flush=True)
                srv = servers[arm.key]
                srv.pause(False)
                rec[arm.key] = {"runtime": runtime.measure(window), **served(srv, image, tmp, window)}
                srv.pause(True)
                beside.sample()
            per_round.append(rec)
        extra = {k: {"cold_start_s": v.cold_start_s, "peak_rss_mib": v.cpu.peak_rss_mib()} for k, v in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()
        runtime.close()
    return {"per_round": per_round, "servers": extra}


def med(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(median(vals)) if vals else None


def summarise(model: str, desc: str, res: dict, chosen: list[Arm]) -> dict:
    pairs = [x for r in res["per_round"] for x in r.values()]
    rt = {
        "p50_ms": med(x["runtime"]["p50_ms"] for x in pairs),
        "p99_ms": med(x["runtime"]["p99_ms"] for x in pairs),
        "best_samples_per_s": med(x["runtime"]["best"]["samples_per_s"] for x in pairs),
        "best_batches": [x["runtime"]["best"]["batch"] for x in pairs],
        "cpu_ms_per_sample": med(x["runtime"]["best"]["cpu_ms_per_sample"] for x in pairs),
    }
    rows = {}
    for arm in chosen:
        recs = [r[arm.key] for r in res["per_round"]]
        row = {
            "label": arm.label,
            "c1_p50_ms": med(x["c1"]["p50_ms"] for x in recs),
            "c1_p99_ms": med(x["c1"]["p99_ms"] for x in recs),
            "c16_rps": med(x["c16"]["rps"] for x in recs),
            "c16_p99_ms": med(x["c16"]["p99_ms"] for x in recs),
            "errors": sum(x[c]["errors"] for x in recs for c in ("c1", "c16")),
            "cold_start_s": res["servers"][arm.key]["cold_start_s"],
            "peak_rss_mib": res["servers"][arm.key]["peak_rss_mib"],
            "overhead_ms": med(
                x["c1"]["p50_ms"] - x["runtime"]["p50_ms"] for x in recs if x["c1"]["p50_ms"] is not None
            ),
            "throughput_ratio": med(x["c16"]["rps"] / x["runtime"]["best"]["samples_per_s"] for x in recs),
        }
        if all("server_ms" in x["c1"] for x in recs):  # the overhead beyond decoding + preprocessing the image
            row["overhead_net_ms"] = med(
                x["c1"]["p50_ms"]
                - x["runtime"]["p50_ms"]
                - x["c1"]["server_ms"]["decode"]
                - x["c1"]["server_ms"]["preprocess"]
                for x in recs
                if x["c1"]["p50_ms"] is not None
            )
        for c in ("c1", "c16"):
            row[f"{c}_cpu_ms"] = {
                k: med(x[c]["cpu_ms_per_request"][k] for x in recs) for k in ("event_loops", "other_threads")
            }
            if all("server_ms" in x[c] for x in recs):
                row[f"{c}_server_ms"] = {s: med(x[c]["server_ms"][s] for x in recs) for s in STAGES}
                row[f"{c}_client_mean_ms"] = med(x[c]["mean_ms"] for x in recs)
                row[f"{c}_batch_mean"] = med(x[c]["batch_mean"] for x in recs)
        rows[arm.key] = row
    return {
        "model": model,
        "desc": desc,
        "target_ratio": MODELS[model].target_ratio,
        "runtime": rt,
        "rows": rows,
    }


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    import onnxruntime

    usable = os.sched_getaffinity(0)
    return (
        f"{cpu}, {len(usable)} of {os.cpu_count()} cores usable (CPUs {','.join(map(str, sorted(usable)))}; "
        f"shared by the servers, the runtime alone and wrk), Python "
        f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds, short windows (~3 minutes)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5, --quick 2)")
    ap.add_argument("--window", type=float, help="seconds per measured wrk window (default 4, --quick 2)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--arms", help="comma-separated server arms (default all): tinymim, tinymim_w2, litserve")
    ap.add_argument(
        "--also-src",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also serve from another tinymim checkout (a before/after row); repeatable",
    )
    args = ap.parse_args()
    wrk_available()
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    # A SIGTERM / SIGHUP (a killed session, a closed terminal) unwinds like Ctrl-C: the servers (paused ones
    # included) are resumed and stopped in measure()'s finally, never left behind.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    rounds = args.rounds or (2 if args.quick else 5)
    window = args.window or (2.0 if args.quick else 4.0)
    chosen = [a for a in arms() if not args.arms or a.key in args.arms.split(",")]
    for i, spec in enumerate(args.also_src):
        name, _, path = spec.partition("=")
        chosen.insert(i, Arm(f"src_{name}", f"`tinymim serve` ({name}: {path})", "tinymim", src=path))
    command = "python " + " ".join(["benchmarks/serve_latency.py", *sys.argv[1:]])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        imgs = images(tmp)
        for model in models:
            beside = Neighbours()
            print(f"1-min load average at start {beside.load_start:.2f} ({os.cpu_count()} CPUs)", flush=True)
            bundle, shape = build_bundle(tmp / model, name=model, spec=MODELS[model].spec())
            res = measure(model, bundle, imgs[model], tmp, rounds, window, chosen, beside)
            results[model] = {
                **summarise(model, f"{MODELS[model].what}: {shape}", res, chosen),
                "machine": machine(),
                "beside": beside.describe(),
                "beside_raw": {
                    "cores": beside.total(),
                    "top": beside.top(),
                    "load": [beside.load_start, beside.load_end],
                },
                "command": command,
                "rounds": rounds,
                "window_s": window,
                "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "raw": res,
            }
    # A run of some models keeps the other models' last results (each with its own command and machine), so the
    # models can be measured in separate runs (e.g. one per quiet slot) and still give one report.
    previous = RESULTS / "serve_latency.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        for m in old.get("models", []):
            if m["model"] in MODELS and m["model"] not in results and "command" in m:
                results[m["model"]] = m
    out = {"models": [results[m] for m in MODELS if m in results]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_latency.json").write_text(json.dumps(out, indent=2, default=float))
    text = render(out)
    (RESULTS / "serve_latency.md").write_text(text)
    print(text)
    return 0


# ------------------------------------------------------------------------------------------------ report
def f(v, nd: int = 2) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def render(out: dict) -> str:
    lines = [
        "## Serving latency and throughput with wrk (benchmarks/serve_latency.py)",
        "",
        "wrk (`-t1 -c1`, then `-t2 -c16`; `apt-get install -y wrk`) posts the same PNG to every server and shares "
        "the cores with it. Models have random weights (timing only).",
        "",
    ]
    for m in out["models"]:
        rt, rows = m["runtime"], m["rows"]
        lines += [
            f"### {m['model']}: {m['desc']}",
            "",
            f"Measured {m['measured_utc']} UTC. Machine: {m['machine']}.  ",
            f"Beside it: {m['beside']}.  ",
            f"Command: `{m['command']}` ({m['rounds']} interleaved round(s), {m['window_s']:g} s wrk windows).",
            "",
            "| | p50 at c=1 | p99 at c=1 | req/s at c=16 | p99 at c=16 | cold start | peak RSS |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows.values():
            lines.append(
                f"| {row['label']} | {f(row['c1_p50_ms'])} ms | {f(row['c1_p99_ms'])} ms | {f(row['c16_rps'], 0)} | "
                f"{f(row['c16_p99_ms'])} ms | {f(row['cold_start_s'], 1)} s | {f(row['peak_rss_mib'], 0)} MiB |"
            )
        best = max(set(rt["best_batches"]), key=rt["best_batches"].count)
        lines.append(
            f"| runtime alone, batch 1 / best batch ({best}) | {f(rt['p50_ms'])} ms | {f(rt['p99_ms'])} ms | "
            f"{f(rt['best_samples_per_s'], 0)} img/s | | | |"
        )
        lines += ["", "Targets (per-round ratios, median over rounds):", ""]
        for row in rows.values():
            if "LitServe" in row["label"]:
                continue
            ok1 = row["overhead_ms"] is not None and row["overhead_ms"] <= OVERHEAD_TARGET_MS
            ok2 = row["throughput_ratio"] is not None and row["throughput_ratio"] >= m["target_ratio"]
            net = (
                f", {f(row['overhead_net_ms'])} ms beyond decoding and preprocessing the image"
                if "overhead_net_ms" in row
                else ""
            )
            lines.append(
                f"- {row['label']}: c=1 p50 overhead over the runtime {f(row['overhead_ms'])} ms{net} "
                f"(target <= {OVERHEAD_TARGET_MS} ms: {'met' if ok1 else 'missed'}); c=16 throughput "
                f"{f(row['throughput_ratio'])} of the best offline batch (target >= {m['target_ratio']}: "
                f"{'met' if ok2 else 'missed'}); errors {row['errors']}."
            )
        lines += [
            "",
            "Where the time goes (tinymim's own per-stage histograms over each window, mean ms per "
            "request; CPU ms per request of the server's event-loop threads, its other threads, and per "
            f"sample of the runtime alone at its best batch: {f(rt['cpu_ms_per_sample'], 3)} ms):",
            "",
            "| | " + " | ".join(STAGES) + " | server total | client mean (wrk) | batch | CPU event loop | "
            "CPU other threads |",
            "|---|" + "---|" * (len(STAGES) + 6),
        ]
        for row in rows.values():
            for c in ("c1", "c16"):
                cpu = row[f"{c}_cpu_ms"]
                if f"{c}_server_ms" in row:
                    st = row[f"{c}_server_ms"]
                    stages = " | ".join(f(st[s], 3) for s in STAGES)
                    total = sum(st.values())
                    extra = f"{f(total, 3)} | {f(row[f'{c}_client_mean_ms'], 3)} | {f(row[f'{c}_batch_mean'], 1)}"
                else:
                    stages = " | ".join("" for _ in STAGES)
                    extra = " | | "
                lines.append(
                    f"| {row['label']} c={c[1:]} | {stages} | {extra} | {f(cpu['event_loops'], 3)} | "
                    f"{f(cpu['other_threads'], 3)} |"
                )
        lines.append("")
    lines += [
        "Server total = the sum of the stages, from the request's first byte in the service to its answer "
        "built; the rest of the client's mean is HTTP parsing, the loopback and wrk itself. CPU per request "
        "counts every thread of the server's processes (LitServe: its API and inference processes), so CPU "
        "ms x req/s / 1000 = cores busy. `--workers 2` rows: both workers' stage histograms together.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
