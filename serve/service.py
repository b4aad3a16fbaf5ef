"""The model behind the routes: bundle + runtime + preprocessing + batcher, started and stopped by the lifespan.

``InferenceService.start(settings)`` loads the bundle (sha256-verified), picks the runtime
(:mod:`serve.select`), warms up every batch size the batcher can form (1..max_batch), and only then marks the
service ready. Routes call :meth:`preprocess` (decode + resize + normalise in a thread pool, off the event
loop) and :meth:`infer` (through the dynamic batcher).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serve.batcher import DynamicBatcher
from serve.bundle import Bundle, load_bundle
from serve.errors import RequestError
from serve.metrics import ServiceMetrics
from serve.preprocess import Preprocessor
from serve.select import Selection, select_runtime
from serve.settings import ServeSettings
from serve.stats import ModelStats

log = logging.getLogger(__name__)
MODEL_VERSION = "1"


@dataclass
class Timing:
    """Where one request's time went, in milliseconds (queue/inference: the slowest of its samples)."""

    preprocess_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_sizes: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "preprocess_ms": round(self.preprocess_ms, 3),
            "queue_ms": round(self.queue_ms, 3),
            "inference_ms": round(self.inference_ms, 3),
            "batch_sizes": list(self.batch_sizes),
        }


class InferenceService:
    def __init__(self, settings: ServeSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self.start_error: str | None = None  # why start() failed, for the CLI's message
        self.bundle: Bundle | None = None
        self.selection: Selection | None = None
        self.preprocessor: Preprocessor | None = None
        self.batcher: DynamicBatcher | None = None
        self.stats: ModelStats | None = None
        self.model_name = settings.model_name or ""
        self.version = MODEL_VERSION
        self.max_batch = settings.max_batch_size
        workers = settings.preprocess_workers or len(os.sched_getaffinity(0))
        self._pre_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinymim-pre")

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except Exception as err:
            self.start_error = str(err)
            raise

    async def _start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        self.bundle = await loop.run_in_executor(None, lambda: load_bundle(s.bundle, verify=True))
        self.model_name = s.model_name or self.bundle.model_name
        self.preprocessor = Preprocessor.from_card(self.bundle.preprocess, max_pixels=s.max_pixels)
        self.selection = await loop.run_in_executor(
            None, lambda: select_runtime(self.bundle, s.artifact, device=s.device, threads=s.threads)
        )
        sel = self.selection
        log.info("serving artifact %s on %s (%s): %s", sel.artifact.name, sel.device, sel.runtime.name, sel.reason)
        self.max_batch = max(1, min(s.max_batch_size, self.bundle.max_batch, sel.runtime.max_batch))
        self.stats = ModelStats(self.model_name, self.version)
        self.batcher = DynamicBatcher(
            sel.runtime,
            max_batch=self.max_batch,
            max_delay_s=s.max_queue_delay_ms / 1000,
            max_queue=s.max_queue,
            metrics=self.metrics,
            stats=self.stats,
            policy=s.batch_policy,
        )
        warm_s = await self.batcher.warmup(self.preprocessor.input_shape)
        self.batcher.start()
        self.ready = True
        self.metrics.ready.set(1)
        log.info(
            "model %s ready in %.1f s (warm-up of batch sizes 1..%d: %.1f s)",
            self.model_name,
            time.perf_counter() - t0,
            self.max_batch,
            warm_s,
        )

    async def stop(self) -> None:
        """Turn readiness off, finish queued work, release the runtime and the threads."""
        self.ready = False
        self.metrics.ready.set(0)
        if self.batcher is not None:
            await self.batcher.drain(self.settings.graceful_timeout_s)
        if self.selection is not None:
            self.selection.runtime.close()
        self._pre_pool.shutdown(wait=True)
        log.info("model %s stopped", self.model_name)

    # -- facts the routes publish ------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return self.bundle.labels if self.bundle else []

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.preprocessor.input_shape  # type: ignore[union-attr]

    def timeout_s(self, requested_s: float | None = None) -> float:
        return requested_s if requested_s is not None else self.settings.request_timeout_s

    # -- work --------------------------------------------------------------------------------------------
    def check_batch(self, n: int, what: str = "images") -> None:
        if not 1 <= n <= self.max_batch:
            raise RequestError(f"a request carries 1..{self.max_batch} {what}; this one has {n}")

    async def preprocess(self, images: list[bytes]) -> tuple[np.ndarray, float]:
        """Encoded images -> (B, C, H, W) float32, decoded in the thread pool; returns the wall seconds."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        arrays = await asyncio.gather(*(loop.run_in_executor(self._pre_pool, self.preprocessor, im) for im in images))
        dt = time.perf_counter() - t0
        self.metrics.preprocess_seconds.observe(dt)
        return np.stack(arrays), dt

    def check_tensor(self, x: np.ndarray) -> None:
        c, h, w = self.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise RequestError(f"tensor input must have shape [B,{c},{h},{w}], got {list(x.shape)}")
        self.check_batch(x.shape[0], "samples")
        if not np.isfinite(x).all():
            raise RequestError("tensor input contains NaN or infinity")

    def arriving(self):
        """Context manager a route holds from its start until it calls :meth:`infer` (see DynamicBatcher)."""
        return self.batcher.arriving()  # type: ignore[union-attr]

    async def infer(self, x: np.ndarray, timeout_s: float, arrival=None) -> tuple[np.ndarray, Timing]:
        """(B, C, H, W) float32 -> (logits (B, K), timing) through the dynamic batcher."""
        results = await self.batcher.submit(x, timeout_s=timeout_s, arrival=arrival)  # type: ignore[union-attr]
        logits = np.stack([r.logits for r in results])
        timing = Timing(
            queue_ms=1000 * max(r.queue_s for r in results),
            inference_ms=1000 * max(r.infer_s for r in results),
            batch_sizes=tuple(r.batch_size for r in results),
        )
        return logits, timing
