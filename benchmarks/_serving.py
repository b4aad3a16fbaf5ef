"""Helpers of benchmarks/serve_latency.py: timing-only bundles, wrk, and what a server process costs.

- ``ModelSpec`` / ``build_bundle``: a timm ViT (through compress.models) with random weights, ONNX FP32, a bundle.
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
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ModelSpec:
    """A timing-only model: the architecture (``compress.models.create_model``'s arguments) and its preprocessing."""

    arch: str
    img_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    patch_size: int | None = None
    depth: int | None = None
    embed_dim: int | None = None
    num_heads: int | None = None
    num_classes: int = 10


def build_bundle(root: Path, *, name: str, spec: ModelSpec, max_batch: int = 32) -> tuple[Path, str]:
    """``spec``, random weights (timing only), as ONNX FP32 in a bundle; returns the bundle and the shape in words."""
    import torch

    from compress.models import create_model
    from serve.bundle import Artifact, Bundle, TensorSpec, sha256_file
    from tinymim.card import Preprocess

    torch.manual_seed(0)
    model, kw = create_model(
        spec.arch,
        num_classes=spec.num_classes,
        img_size=spec.img_size,
        in_chans=spec.in_chans,
        patch_size=spec.patch_size,
        depth=spec.depth,
        num_heads=spec.num_heads,
        embed_dim=spec.embed_dim,
    )
    model.eval()
    c, size = spec.in_chans, spec.img_size
    root.mkdir(parents=True, exist_ok=True)
    onnx_path = root / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, c, size, size),),
            str(onnx_path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    Bundle(
        model_name=name,
        labels=[f"class_{i}" for i in range(spec.num_classes)],
        preprocess=Preprocess((c, size, size), tuple(spec.mean), tuple(spec.std), "bicubic", spec.crop_pct),
        input=TensorSpec("input", "FP32", [-1, c, size, size]),
        output=TensorSpec("logits", "FP32", [-1, spec.num_classes]),
        max_batch=max_batch,
        artifacts=[Artifact("onnx-fp32", "model.onnx", "onnx", "fp32", "onnxruntime", sha256_file(onnx_path))],
        source={"note": f"benchmarks/serve_latency.py: timm ViT, random init (timing only): {name}"},
    ).save(root)
    blocks = model.blocks
    params = sum(p.numel() for p in model.parameters()) / 1e6
    shape = (
        f"ViT width {model.embed_dim}, "
        f"{blocks[0].attn.num_heads} heads, depth {len(blocks)}, patch {model.patch_embed.patch_size[0]}, {size} px, "
        f"{c} channel{'s' if c > 1 else ''}, {spec.num_classes} classes, {params:.2f} M parameters"
    )
    return root, shape


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
    answered = s["requests"] - errors
    return {
        "requests": s["requests"],
        "errors": errors,
        "rps": answered / (s["duration_us"] / 1e6),
        # no answer in the window (a model slower than the window): no latency to report, not a latency of 0
        **{
            k.replace("_us", "_ms"): s[k] / 1000 if answered > 0 else None
            for k in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us")
        },
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


def _ancestors(pid: int, parents: dict[int, int]) -> set[int]:
    out = set()
    while pid in parents and pid not in out:
        out.add(pid)
        pid = parents[pid]
    return out


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in args if a]
    if not words:  # a kernel thread
        try:
            return f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
        except OSError:
            return "?"
    words[0] = Path(words[0]).name
    text = " ".join(words)
    return text if len(text) <= 70 else text[:67] + "..."


class Neighbours:
    """CPU seconds used by every process that is not this one or its descendants, between samples (Linux /proc).

    ``sample()`` after each measured window; ``top()`` then names what ran beside the benchmark and how many
    cores it kept busy on average. Processes that start and end between two samples are not seen.
    """

    def __init__(self) -> None:
        self.t0 = self.t_last = time.monotonic()
        self.load_start = self.load_end = os.getloadavg()[0]
        self.last = self._snapshot()
        self.used: dict[int, float] = {}
        self.names: dict[int, str] = {}

    @staticmethod
    def _snapshot() -> dict[int, float]:
        cpu, parents = {}, {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(d.name)] = int(fields[1])
            cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        me = os.getpid()
        return {p: c for p, c in cpu.items() if me not in _ancestors(p, parents)}

    def sample(self) -> None:
        now = self._snapshot()
        for pid, c in now.items():
            if pid in self.last and c > self.last[pid]:
                self.used[pid] = self.used.get(pid, 0.0) + c - self.last[pid]
                self.names.setdefault(pid, _name(pid))
        self.last, self.t_last = now, time.monotonic()
        self.load_end = os.getloadavg()[0]

    def top(self, n: int = 5, min_cores: float = 0.02) -> list[tuple[str, float]]:
        """[(command line, cores busy on average)], the busiest first."""
        wall = max(1e-6, self.t_last - self.t0)
        by_name: dict[str, float] = {}
        for pid, secs in self.used.items():
            by_name[self.names[pid]] = by_name.get(self.names[pid], 0.0) + secs / wall
        ranked = sorted(by_name.items(), key=lambda kv: -kv[1])
        return [(k, v) for k, v in ranked[:n] if v >= min_cores]

    def total(self) -> float:
        return sum(self.used.values()) / max(1e-6, self.t_last - self.t0)

    def describe(self) -> str:
        top = "; ".join(f"`{name}` {cores:.2f}" for name, cores in self.top()) or "nothing measurable"
        return (
            f"1-min load average {self.load_start:.2f} at start, {self.load_end:.2f} at end; other processes kept "
            f"{self.total():.2f} cores busy on average (busiest, cores: {top})"
        )
