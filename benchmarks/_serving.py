"""Helpers of benchmarks/serve_latency.py: timing-only bundles, wrk, and what a server process costs.

- ``build_bundle``: a timm ViT with random weights (timing only) exported to ONNX FP32 in a bundle.
- ``run_wrk``: one wrk run (C load generator, ``apt-get install -y wrk``) with benchmarks/wrk_post.lua.
- ``Proc``: CPU seconds (event-loop thread vs the other threads) and peak RSS of a server's process tree.
- ``stage_sums``: the server's per-stage histogram sums from /metrics, to split a window's time by stage.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_bundle(
    root: Path,
    *,
    name: str,
    img_size: int,
    patch_size: int,
    depth: int,
    in_chans: int,
    mean: list[float],
    std: list[float],
    crop_pct: float,
    max_batch: int = 32,
) -> Path:
    import timm
    import torch

    from serve.bundle import Artifact, Bundle, TensorSpec, sha256_file
    from tinymim.card import Preprocess

    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=10,
        img_size=img_size,
        patch_size=patch_size,
        depth=depth,
        in_chans=in_chans,
    ).eval()
    root.mkdir(parents=True, exist_ok=True)
    onnx_path = root / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, in_chans, img_size, img_size),),
            str(onnx_path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    Bundle(
        model_name=name,
        labels=[f"class_{i}" for i in range(10)],
        preprocess=Preprocess((in_chans, img_size, img_size), tuple(mean), tuple(std), "bicubic", crop_pct),
        input=TensorSpec("input", "FP32", [-1, in_chans, img_size, img_size]),
        output=TensorSpec("logits", "FP32", [-1, 10]),
        max_batch=max_batch,
        artifacts=[Artifact("onnx-fp32", "model.onnx", "onnx", "fp32", "onnxruntime", sha256_file(onnx_path))],
        source={"note": f"benchmarks/serve_latency.py: timm ViT, random init (timing only): {name}"},
    ).save(root)
    return root


def multipart(image: bytes, field: str = "content", filename: str = "image.png") -> tuple[bytes, str]:
    """One file as a multipart/form-data body (fixed boundary) and its Content-Type."""
    boundary = "tinymimbenchboundary7f3a"
    buf = io.BytesIO()
    buf.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode())
    buf.write(b"Content-Type: image/png\r\n\r\n" + image + f"\r\n--{boundary}--\r\n".encode())
    return buf.getvalue(), f"multipart/form-data; boundary={boundary}"


def wrk_available() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)")
    return path


def run_wrk(url: str, body: Path, content_type: str, *, connections: int, threads: int, seconds: float) -> dict:
    """One wrk run; returns its summary (latencies in ms, req/s) or raises with wrk's output."""
    env = {**os.environ, "WRK_BODY": str(body), "WRK_CTYPE": content_type}
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    s = json.loads(line[len("WRKJSON ") :])
    errors = s["non2xx"] + s["connect"] + s["read"] + s["write"] + s["timeout"]
    return {
        "requests": s["requests"],
        "errors": errors,
        "rps": (s["requests"] - errors) / (s["duration_us"] / 1e6),
        **{k.replace("_us", "_ms"): s[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us")},
    }


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def process_tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.append(p)
            todo += _children(p)
    return seen


@dataclass
class CpuSample:
    main: float  # the main thread of each process (the event loops)
    other: float  # every other thread (inference thread, ONNX Runtime pool, preprocessing pool, ...)


class Proc:
    """CPU time and peak memory of a process and its children (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> CpuSample:
        main = other = 0.0
        for p in process_tree(self.pid):
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                secs = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
                if int(task.name) == p:
                    main += secs
                else:
                    other += secs
        return CpuSample(main, other)

    def peak_rss_mib(self) -> float:
        total = 0
        for p in process_tree(self.pid):
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024


def stage_sums(url: str) -> dict[str, float] | None:
    """{stage: seconds summed, "<stage>_n": count, "batch_sum", "batch_n"} from a tinymim server's /metrics."""
    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tinymim_request_stage_seconds_sum{"):
            out[line.split('"')[1]] = float(line.split()[-1])
        elif line.startswith("tinymim_request_stage_seconds_count{"):
            out[line.split('"')[1] + "_n"] = float(line.split()[-1])
        elif line.startswith("tinymim_batch_size_sum "):
            out["batch_sum"] = float(line.split()[-1])
        elif line.startswith("tinymim_batch_size_count "):
            out["batch_n"] = float(line.split()[-1])
    return out or None
