"""Dynamic batching: many requests' samples -> one runtime call -> answers routed back to each request.

One worker coroutine owns the runtime and calls it from a single dedicated thread, so the runtime (not
thread-safe) is never entered twice, while the event loop keeps accepting requests. The worker takes the
oldest queued sample and waits until either ``max_batch`` samples are queued or the oldest has waited
``max_delay_s``, then runs them as one batch (B, C, H, W) -> logits (B, K) and resolves each sample's future
with its own row. With ``policy="arrivals"`` (the default) the worker waits only while more requests are
already arriving (announced with :meth:`arriving`: body being read, images being preprocessed), so a lone
request never pays the delay; under load the queue fills while the runtime is busy and batches form on their
own. ``policy="always"`` waits the full delay like Triton's dynamic batcher. Samples whose request was
cancelled (timeout) while still queued are skipped, never run.

Admission is all-or-nothing per request: if its B samples do not fit in ``max_queue``, it is refused at once
(503 + Retry-After) instead of waiting, so an overloaded service sheds load rather than queueing forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serve.errors import Overloaded, ServeError
from serve.metrics import ServiceMetrics
from serve.runtimes.base import Runtime
from serve.stats import ModelStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleResult:
    logits: np.ndarray  # (K,) float32
    queue_s: float  # enqueue -> batch start
    infer_s: float  # the runtime call of the batch this sample ran in
    batch_size: int


@dataclass
class _Item:
    x: np.ndarray  # (C, H, W) float32
    future: asyncio.Future
    enqueued: float


class _Arrival:
    """One announced request; leaving twice is harmless."""

    def __init__(self, batcher: DynamicBatcher) -> None:
        self._batcher: DynamicBatcher | None = batcher

    def leave(self) -> None:
        if self._batcher is not None:
            self._batcher.arriving_count -= 1
            self._batcher._wakeup_set()
            self._batcher = None


class InferenceFailed(ServeError):
    """The runtime raised while running a batch (details are in the server log)."""


class DynamicBatcher:
    def __init__(
        self,
        runtime: Runtime,
        *,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        metrics: ServiceMetrics,
        stats: ModelStats,
        policy: str = "arrivals",
    ) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.stats = stats
        self.policy = policy
        self.arriving_count = 0  # requests announced but not yet submitted
        self._pending: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False
        # The single thread that ever touches the runtime.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinymim-infer")

    def _wakeup_set(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def depth(self) -> int:
        return len(self._pending)

    async def warmup(self, shape: tuple[int, int, int], sizes: list[int] | None = None) -> float:
        """Run every batch size in ``sizes`` (default 1..max_batch) once; returns the seconds it took."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        for b in sizes or range(1, self.max_batch + 1):
            x = np.zeros((b, *shape), np.float32)
            await loop.run_in_executor(self._executor, self.runtime.infer, x)
        return time.perf_counter() - t0

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="tinymim-batcher")
        self._worker.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Never expected (batch errors are caught per batch); without a worker every request would time out.
            log.critical("batch worker died; the service cannot answer", exc_info=task.exception())
            self._closing = True

    @contextlib.contextmanager
    def arriving(self) -> Iterator[_Arrival]:
        """Announce a request that will soon call :meth:`submit` (so the worker may wait for it)."""
        arrival = _Arrival(self)
        self.arriving_count += 1
        try:
            yield arrival
        finally:
            arrival.leave()

    async def submit(
        self, batch: np.ndarray, *, timeout_s: float, arrival: _Arrival | None = None
    ) -> list[SampleResult]:
        """Queue a request's samples (B, C, H, W); wait for all their results or raise Overloaded."""
        if self._closing or self._worker is None:
            raise Overloaded("the service is shutting down; retry on another instance")
        n = batch.shape[0]
        if len(self._pending) + n > self.max_queue:
            self.metrics.rejected.inc(n)
            raise Overloaded(f"queue full ({len(self._pending)}/{self.max_queue} samples waiting); retry shortly")
        if arrival is not None:
            arrival.leave()
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        futures = []
        for i in range(n):
            fut = loop.create_future()
            self._pending.append(_Item(batch[i], fut, now))
            futures.append(fut)
        self.metrics.queue_depth.set(len(self._pending))
        self._wakeup.set()  # type: ignore[union-attr]
        try:
            return await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            # wait_for cancelled gather, which cancelled the futures: the worker skips them if still queued.
            self.metrics.timeouts.inc(n)
            raise Overloaded(f"request timed out after {timeout_s:g} s before it was served") from None

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Refuse new work, let the worker finish what is queued, then release the inference thread."""
        self._closing = True
        if self._worker is not None:
            self._wakeup.set()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout_s)
            except (asyncio.TimeoutError, TimeoutError):
                log.warning("batcher did not drain in %.1f s; cancelling %d queued samples", timeout_s, self.depth)
                self._worker.cancel()
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(Overloaded("the service shut down before this request was served"))
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled_head()
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._fill(self._pending[0].enqueued + self.max_delay_s)
            items = self._take()
            if items:
                await self._execute(loop, items)

    def _drop_cancelled_head(self) -> None:
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()
        self.metrics.queue_depth.set(len(self._pending))

    async def _fill(self, deadline: float) -> None:
        """Wait until a full batch is queued, the oldest sample's delay is up, or we are draining."""
        assert self._wakeup is not None
        while len(self._pending) < self.max_batch and not self._closing:
            if self.policy == "arrivals" and self.arriving_count <= 0:
                return
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except (asyncio.TimeoutError, TimeoutError):
                return

    def _take(self) -> list[_Item]:
        items: list[_Item] = []
        while self._pending and len(items) < self.max_batch:
            item = self._pending.popleft()
            if not item.future.done():  # cancelled by its request's timeout: never run it
                items.append(item)
        self.metrics.queue_depth.set(len(self._pending))
        return items

    async def _execute(self, loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            x = np.stack([it.x for it in items])  # (B, C, H, W)
            logits = await loop.run_in_executor(self._executor, self.runtime.infer, x)
        except Exception:
            log.exception("runtime %s failed on a batch of %d", self.runtime.name, len(items))
            for it in items:
                if not it.future.done():
                    it.future.set_exception(InferenceFailed("inference failed"))
            return
        infer_s = time.perf_counter() - start
        b = len(items)
        self.metrics.batch_size.observe(b)
        self.metrics.inference_seconds.observe(infer_s)
        self.stats.record_batch(b, infer_s)
        for i, it in enumerate(items):
            queue_s = start - it.enqueued
            self.metrics.queue_seconds.observe(queue_s)
            if not it.future.done():
                it.future.set_result(SampleResult(logits[i].copy(), queue_s, infer_s, b))
