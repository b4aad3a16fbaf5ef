"""The model behind the routes: bundle + runtime + preprocessing + batcher, started and stopped by the lifespan.

``InferenceService.start(settings)`` loads the bundle (sha256-verified), picks the runtime
(:mod:`serve.select`), warms up the batch sizes the batcher can form (1, 2, 4, ..., max_batch; the others too
while that is quick: :meth:`serve.batcher.DynamicBatcher.warmup`), and only then marks the service ready
(``cold_start_s``: process start -> ready). Routes call :meth:`preprocess` (decode + resize +
normalise) and :meth:`infer` (through the dynamic batcher), both recording their stages in a
:class:`serve.timing.RequestTiming`.

Images of at most ``preprocess_inline_pixels`` pixels are decoded on the event loop: for a thumbnail the
decode costs less than handing it to a thread and back. Larger images go to the preprocessing thread pool,
where Pillow releases the GIL, so the event loop keeps reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from serve.batcher import Arrival, DynamicBatcher
from serve.bundle import Bundle, load_bundle
from serve.errors import RequestError
from serve.metrics import ServiceMetrics
from serve.preprocess import Preprocessor
from serve.procinfo import peak_rss_bytes, seconds_since_process_start
from serve.select import Selection, select_runtime
from serve.settings import ServeSettings
from serve.stats import ModelStats
from serve.timing import RequestTiming

log = logging.getLogger(__name__)
MODEL_VERSION = "1"


def _sizes(sizes: list[int]) -> str:
    """Batch sizes in words: "1..8" when they are all of them, else "1, 2, 4, 8"."""
    got = sorted(sizes)
    return f"1..{got[-1]}" if got == list(range(1, len(got) + 1)) and len(got) > 2 else ", ".join(map(str, got))


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
        self.cold_start_s: float | None = None
        self._refresher: asyncio.Task | None = None
        # runtime threads: explicit, or this process's share of the usable cores
        self.threads = settings.threads or max(1, len(os.sched_getaffinity(0)) // settings.workers)
        self._inline_pixels = settings.preprocess_inline_pixels
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
            None, lambda: select_runtime(self.bundle, s.artifact, device=s.device, threads=self.threads)
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
            inline_max_s=s.inline_max_compute_ms / 1000,
        )
        warm_s = await self.batcher.warmup(self.preprocessor.input_shape)
        self.batcher.start()
        self.ready = True
        self.metrics.ready.set(1)
        if self.metrics.multiprocess_dir is not None:  # other workers' scrapes read these from the files
            self._refresher = asyncio.create_task(self._refresh_periodically())
        self.cold_start_s = seconds_since_process_start()
        if self.cold_start_s is not None:
            self.metrics.cold_start.set(self.cold_start_s)
        log.info(
            "model %s ready in %.1f s (warm-up of batch sizes %s: %.1f s; %s since the process started, "
            "peak RSS %.0f MiB; batch-1 compute %.2f ms: idle requests run %s)",
            self.model_name,
            time.perf_counter() - t0,
            _sizes(self.batcher.warmed),
            warm_s,
            "?" if self.cold_start_s is None else f"{self.cold_start_s:.1f} s",
            peak_rss_bytes() / 2**20,
            1000 * self.batcher.batch1_s,
            "on the event loop" if self.batcher.inline else "on the inference thread",
        )

    def refresh_gauges(self) -> None:
        """Queue depth and peak memory, which change without an event to record them."""
        if self.batcher is not None:
            self.metrics.queue_depth.set(self.batcher.depth)
        self.metrics.peak_rss.set(peak_rss_bytes())

    async def _refresh_periodically(self, every_s: float = 1.0) -> None:
        while True:
            self.refresh_gauges()
            await asyncio.sleep(every_s)

    async def stop(self) -> None:
        """Turn readiness off, finish queued work, release the runtime and the threads."""
        self.ready = False
        self.metrics.ready.set(0)
        if self._refresher is not None:
            self._refresher.cancel()
        if self.batcher is not None:
            await self.batcher.drain(self.settings.graceful_timeout_s)
        if self.selection is not None:
            self.selection.runtime.close()
        self._pre_pool.shutdown(wait=True)
        self.metrics.worker_exited()
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

    async def preprocess(self, images: list[bytes], timing: RequestTiming) -> np.ndarray:
        """Encoded images -> (B, C, H, W) float32; adds each image's decode and preprocess time to ``timing``."""
        pre = self.preprocessor
        assert pre is not None
        opened = []
        for data in images:
            t0 = time.perf_counter()
            opened.append(pre.open(data))  # header only: refuses unknown or oversized images at once
            timing.decode += time.perf_counter() - t0
        loop = asyncio.get_running_loop()
        pooled = {
            i: loop.run_in_executor(self._pre_pool, pre.timed, img)
            for i, img in enumerate(opened)
            if img.width * img.height > self._inline_pixels
        }
        done = [None if i in pooled else pre.timed(img) for i, img in enumerate(opened)]
        for i, fut in pooled.items():
            done[i] = await fut
        for _, decode_s, pre_s in done:
            timing.decode += decode_s
            timing.preprocess += pre_s
        if len(done) == 1:
            return done[0][0][None]
        return np.stack([x for x, _, _ in done])

    def check_tensor(self, x: np.ndarray) -> None:
        c, h, w = self.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise RequestError(f"tensor input must have shape [B,{c},{h},{w}], got {list(x.shape)}")
        self.check_batch(x.shape[0], "samples")
        if not np.isfinite(x).all():
            raise RequestError("tensor input contains NaN or infinity")

    def arriving(self) -> Arrival:
        """Context manager a route holds from its start until it calls :meth:`infer` (see DynamicBatcher)."""
        return self.batcher.arriving()  # type: ignore[union-attr]

    async def infer(
        self,
        x: np.ndarray,
        timeout_s: float,
        timing: RequestTiming,
        arrival: Arrival | None = None,
        in_flight: int | None = None,
    ) -> np.ndarray:
        """(B, C, H, W) float32 -> logits (B, K) through the dynamic batcher; records queue, compute, batches.

        ``in_flight``: requests the HTTP server holds, this one included (None: unknown, e.g. in-process tests).
        """
        answer = await self.batcher.run(  # type: ignore[union-attr]
            x, timeout_s=timeout_s, arrival=arrival, alone=in_flight == 1
        )
        timing.queue, timing.compute, timing.batch_sizes = answer.queue_s, answer.compute_s, answer.batch_sizes
        return answer.logits

    def answered(self, timing: RequestTiming) -> None:
        """Record a request answered 200: stage histograms and the v2 statistics."""
        self.metrics.observe(timing)
        self.stats.record_request(  # type: ignore[union-attr]
            ok=True,
            total_s=timing.total,
            queue_s=timing.queue,
            input_s=timing.decode + timing.preprocess,
            output_s=timing.encode,
        )
