"""Load running services with async httpx: ``concurrency`` workers per level, each sending requests back to back.

Per service and concurrency level: latency percentiles of successful requests, throughput (successes per
second of wall time), errors by HTTP status (``"transport"`` for connection failures and client timeouts), and
where the server spent the time: the mean of each stage of the ``Server-Timing`` header (decode, preprocess,
queue, compute, encode, total) and the mean batch size, so ``client latency - server total`` is what the
network, HTTP and the client added. What the service reports about itself (``/v1/model``: artifact, runtime,
threads, CPUs, gate accuracy, cold start, peak memory) is recorded beside its figures.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import httpx
import numpy as np

from serve.bench.config import BenchConfig
from serve.bench.images import load_images
from serve.bench.stats import summarize
from serve.timing import STAGES, parse_server_timing
from tinymim.errors import ConfigError


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


async def _describe(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        r = await client.get("/v1/model")
    except httpx.HTTPError as err:
        raise ConfigError(f"{url}: cannot reach the service ({err})") from None
    if r.status_code != 200:
        raise ConfigError(f"{url}: GET /v1/model answered {r.status_code}: {r.text[:200]} (ready? API key?)")
    return r.json()


def _stage_means(timings: list[dict[str, float | str]]) -> dict[str, float]:
    """Mean milliseconds per Server-Timing stage (+ total) over the answers that carried one."""
    out = {}
    for name in (*STAGES, "total"):
        vals = [t[name] for t in timings if isinstance(t.get(name), float)]
        if vals:
            out[name] = float(np.mean(vals))
    return out


async def _level(
    client: httpx.AsyncClient, requests: list[tuple[str, bytes, dict]], cfg: BenchConfig, conc: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    timings: list[dict[str, float | str]] = []
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
                status, r = "transport", None
            dt = time.perf_counter() - t0
            if status == "200":
                latencies.append(dt)
                timings.append(parse_server_timing(r.headers.get("server-timing")))  # type: ignore[union-attr]
            else:
                errors[status] = errors.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conc)))
    wall = time.perf_counter() - t0
    batches = [
        float(np.mean([int(b) for b in str(t["batch"]).split()])) for t in timings if isinstance(t.get("batch"), str)
    ]
    return {
        "concurrency": conc,
        "requests": sent,
        "ok": len(latencies),
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        "errors": errors,
        **summarize(latencies),
        "server_stages_ms": _stage_means(timings),
        "batch_size_mean": float(np.mean(batches)) if batches else None,
        "_latencies": latencies,
    }


async def bench_service(cfg: BenchConfig, url: str) -> dict[str, Any]:
    """Every concurrency level of ``cfg`` against one service."""
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    conns = max(cfg.concurrency)
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=cfg.timeout_s, limits=limits) as client:
        info = await _describe(client, url)
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
        after = await _describe(client, url)  # peak memory once loaded
    return {
        "url": url,
        "protocol": cfg.protocol,
        "model": model,
        "artifact": info.get("artifact"),
        "runtime": info.get("runtime"),
        "threads": info.get("threads"),
        "cpus": info.get("cpus"),
        "gate_accuracy": info.get("gate_accuracy"),
        "cold_start_s": info.get("cold_start_s"),
        "peak_rss_bytes": after.get("peak_rss_bytes"),
        "images": len(images),
        "levels": levels,
    }


async def run_online(cfg: BenchConfig) -> list[dict[str, Any]]:
    """One report per URL, measured one after the other (never at the same time: they would share the CPUs)."""
    return [await bench_service(cfg, url) for url in cfg.urls]
