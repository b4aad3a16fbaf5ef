"""Load a running service with async httpx: ``concurrency`` workers, each sending requests back to back.

Per concurrency level: latency percentiles of successful requests, throughput (successes per second of
wall time), and errors by HTTP status (``"transport"`` for connection failures and client timeouts).
Images come from a folder, or are synthesised at the model's input size.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from serve.bench.config import BenchConfig
from serve.bench.stats import summarize
from tinymim.errors import ConfigError

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def load_images(folder: str | None, size: int, *, count: int = 8, limit: int = 256) -> list[bytes]:
    """Encoded images from ``folder`` (first ``limit``, sorted), or ``count`` synthetic JPEGs of ``size`` px."""
    if folder:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)[:limit]
        if not files:
            raise ConfigError(f"--images {folder}: no .jpg/.jpeg/.png/.webp/.bmp files found")
        return [p.read_bytes() for p in files]
    from PIL import Image

    out = []
    for i in range(count):
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[0:size, 0:size] / size
        rgb = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy))], -1)
        arr = ((rgb + 1) * 110 + rng.integers(0, 30, (size, size, 3))).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def v2_binary_request(
    image: bytes, input_name: str = "input", output_name: str = "logits"
) -> tuple[bytes, dict[str, str]]:
    """One encoded image as a v2 binary-extension request (BYTES [1], top-1 classification output)."""
    blob = struct.pack("<I", len(image)) + image
    head = json.dumps(
        {
            "inputs": [
                {"name": input_name, "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}
            ],
            "outputs": [{"name": output_name, "parameters": {"classification": 1}}],
        }
    ).encode()
    return head + blob, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


async def _describe(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/v1/model")
    if r.status_code != 200:
        raise ConfigError(f"GET /v1/model answered {r.status_code}: {r.text[:200]} (is the service ready? API key?)")
    return r.json()


async def _level(
    client: httpx.AsyncClient, requests: list[tuple[str, bytes, dict]], cfg: BenchConfig, conc: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    server_timing: list[dict] = []
    sent = 0
    t_end = time.perf_counter() + cfg.duration_s
    budget = cfg.requests

    async def worker(wid: int) -> None:
        nonlocal sent
        i = wid
        while True:
            if budget is not None:
                if sent >= budget:
                    return
            elif time.perf_counter() >= t_end:
                return
            sent += 1
            path, body, headers = requests[i % len(requests)]
            i += conc
            t0 = time.perf_counter()
            try:
                r = await client.post(path, content=body, headers=headers)
                status = str(r.status_code)
            except httpx.HTTPError:
                status = "transport"
                r = None
            dt = time.perf_counter() - t0
            if status == "200":
                latencies.append(dt)
                if r is not None and path.startswith("/v1"):
                    server_timing.append(r.json()["timing"])
            else:
                errors[status] = errors.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conc)))
    wall = time.perf_counter() - t0
    level = {
        "concurrency": conc,
        "requests": sent,
        "ok": len(latencies),
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        "errors": errors,
        **summarize(latencies),
    }
    if server_timing:
        level["server_ms_mean"] = {
            k: float(np.mean([t[k] for t in server_timing]))
            for k in ("preprocess_ms", "queue_ms", "inference_ms", "total_ms")
        }
        level["batch_size_mean"] = float(np.mean([np.mean(t["batch_sizes"]) for t in server_timing]))
    level["_latencies"] = latencies
    return level


async def run_online(cfg: BenchConfig) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    limits = httpx.Limits(max_connections=max(cfg.concurrency), max_keepalive_connections=max(cfg.concurrency))
    async with httpx.AsyncClient(base_url=cfg.url, headers=headers, timeout=cfg.timeout_s, limits=limits) as client:
        info = await _describe(client)
        model = cfg.model or info["name"]
        images = load_images(cfg.images, int(info["input_shape"][-1]))
        if cfg.protocol == "v1":
            reqs = [("/v1/classify?top_k=1", im, {"Content-Type": "application/octet-stream"}) for im in images]
        else:
            reqs = [(f"/v2/models/{model}/infer", *v2_binary_request(im)) for im in images]
        for i in range(cfg.warmup):
            path, body, h = reqs[i % len(reqs)]
            await client.post(path, content=body, headers=h)
        levels = [await _level(client, reqs, cfg, c) for c in cfg.concurrency]
    return {
        "url": cfg.url,
        "protocol": cfg.protocol,
        "model": model,
        "artifact": info.get("artifact"),
        "runtime": info.get("runtime"),
        "images": len(images),
        "levels": levels,
    }
