"""Dynamic batching on one inference thread: many requests' samples -> one runtime call -> rows back to each.

One dedicated thread owns the runtime (runtimes are not thread-safe) and loops: wait for queued samples, wait
up to ``max_delay_s`` (counted from the oldest sample's arrival) for ``max_batch`` of them, run them as one
batch (B, C, H, W) -> logits (B, K), and hand the rows back to the event loop with a single
``call_soon_threadsafe`` per batch. The event loop's share of a request is therefore small and constant:
append the samples under a lock, then await one future (no coroutine hand-offs or executor round trips per
batch); it stays free to read and decode the next requests while the runtime computes.

With ``policy="arrivals"`` (the default) the thread waits for more samples only while more requests are
already arriving (announced with :meth:`DynamicBatcher.arriving`: body being read, images being decoded), so
a lone request never pays the delay; under load, requests queue while the runtime is busy and batches form
on their own. ``policy="always"`` waits the full delay, like Triton's dynamic batcher.

A request that finds the service idle (the only request the HTTP server has in flight, nothing queued or
running) runs at once on the event loop when the model is fast (its batch-1 compute, the least of the last
``BATCH1_WINDOW`` batches of one, warm-up included, is at most ``inline_max_s``): for a millisecond model
the two thread hand-offs are a noticeable part of the latency, and an idle service has nothing else to do
meanwhile. Slower models always go through the thread, so the loop keeps reading and decoding requests
while the runtime computes.

Admission is all-or-nothing per request: if its B samples do not fit in ``max_queue``, it is refused at once
(503 + Retry-After) rather than queued forever. A request whose timeout expires while its samples still wait
is answered 503 and its samples are skipped, never run. ``drain`` refuses new work, lets the thread finish
everything queued, then stops it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from serve.errors import Overloaded, ServeError
from serve.metrics import ServiceMetrics
from serve.runtimes.base import Runtime
from serve.stats import ModelStats

log = logging.getLogger(__name__)
BATCH1_WINDOW = 64  # batches of one that the batch-1 compute estimate looks back on
WARMUP_ALL_SIZES_S = 2.0  # the warm-up runs the sizes that are not powers of two only while it is this quick


class InferenceFailed(ServeError):
    """The runtime raised while running a batch (details are in the server log)."""


@dataclass(frozen=True)
class Answer:
    """One request's logits and where its samples' time went (the slowest sample's queue and compute)."""

    logits: np.ndarray  # (B, K) float32
    queue_s: float  # enqueue -> the start of the batch's runtime call
    compute_s: float  # the runtime call of that batch
    batch_sizes: tuple[int, ...]  # size of the batch each sample ran in


class _Job:
    """One request's samples in flight. Touched by the event loop only, except ``dead`` (read by the thread)."""

    __slots__ = ("future", "n", "left", "rows", "queue_s", "compute_s", "sizes", "dead", "deadline")

    def __init__(self, future: asyncio.Future, n: int, deadline: float) -> None:
        self.future = future
        self.deadline = deadline  # perf_counter() past which none of its samples may start
        self.n = self.left = n
        self.rows: np.ndarray | None = None
        self.queue_s = self.compute_s = 0.0
        self.sizes = [0] * n
        self.dead = False  # timed out or abandoned: the thread skips its samples


class _Item(NamedTuple):
    job: _Job
    index: int
    x: np.ndarray  # (C, H, W) float32
    enqueued: float


class Arrival:
    """One announced request (see :meth:`DynamicBatcher.arriving`); leaving twice is harmless."""

    __slots__ = ("_batcher",)

    def __init__(self, batcher: DynamicBatcher) -> None:
        self._batcher: DynamicBatcher | None = batcher
        batcher.arriving_count += 1

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def leave(self) -> None:
        if self._batcher is not None:
            b, self._batcher = self._batcher, None
            b.arriving_count -= 1
            if b.arriving_count <= 0 and b.filling:
                with b.cond:
                    b.cond.notify()


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
        inline_max_s: float = 0.0,
    ) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.stats = stats
        self.policy = policy
        self.arriving_count = 0  # requests announced but not yet submitted (event loop writes, thread reads)
        self.filling = False  # the thread is waiting for a fuller batch
        self.inline_max_s = inline_max_s
        # Batch-1 compute: the least of the recent batches of one. Being descheduled on a busy core only adds
        # time, so the least is the model's own cost; an average would be pulled over inline_max_s by a few
        # preemptions and then keep every request on the (slower) thread path. A slower machine raises them all.
        self._batch1: deque[float] = deque(maxlen=BATCH1_WINDOW)
        self.warmed: list[int] = []  # the batch sizes the warm-up ran
        self._executing = False  # a runtime call is in progress (thread or inline); guarded by cond
        self.cond = threading.Condition()
        self._pending: deque[_Item] = deque()  # guarded by cond
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """Samples waiting for a batch."""
        return len(self._pending)

    async def warmup(self, shape: tuple[int, int, int], sizes: list[int] | None = None) -> float:
        """Run each batch size in ``sizes`` once, off the event loop; returns seconds (sizes run: ``warmed``).

        Default: 1, 2, 4, ... and max_batch, then the other sizes while the warm-up has taken less than
        ``WARMUP_ALL_SIZES_S`` (a GPU runtime that tunes kernels per shape gets every size; a big model on
        one CPU core is not held back for a minute warming 528 images for 1..32).
        """
        powers, b = [], 1
        while b < self.max_batch:
            powers.append(b)
            b *= 2
        powers.append(self.max_batch)
        order = sizes or [*powers, *(b for b in range(1, self.max_batch + 1) if b not in powers)]

        def run() -> float:
            t0 = time.perf_counter()
            self.warmed = []
            for b in order:
                if sizes is None and b not in powers and time.perf_counter() - t0 > WARMUP_ALL_SIZES_S:
                    break
                self.runtime.infer(np.zeros((b, *shape), np.float32))
                self.warmed.append(b)
            x1, one = np.zeros((1, *shape), np.float32), []
            for _ in range(3):
                t1 = time.perf_counter()
                self.runtime.infer(x1)
                one.append(time.perf_counter() - t1)
            self._batch1.extend(one)
            return time.perf_counter() - t0

        return await asyncio.get_running_loop().run_in_executor(None, run)

    @property
    def batch1_s(self) -> float:
        """The model's batch-1 compute in seconds (the least of the recent batches of one; inf before warm-up)."""
        return min(self._batch1, default=float("inf"))

    @property
    def inline(self) -> bool:
        """Whether a lone request may run on the event loop now (policy "arrivals", the model fast enough)."""
        return self.policy == "arrivals" and self.batch1_s <= self.inline_max_s

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="tinymim-infer", daemon=True)
        self._thread.start()

    def arriving(self) -> Arrival:
        """Announce a request that will soon call :meth:`run` (so the thread may wait for its samples)."""
        return Arrival(self)

    async def run(
        self, batch: np.ndarray, *, timeout_s: float, arrival: Arrival | None = None, alone: bool = False
    ) -> Answer:
        """Queue a request's samples (B, C, H, W) and wait for their rows; raise Overloaded when refused.

        ``alone``: the HTTP server has no other request in flight (then a fast model may run inline).
        """
        inline = alone and self.inline and timeout_s > self.inline_max_s  # one that might time out queues
        if inline and self.arriving_count <= (arrival is not None) and batch.shape[0] <= self.max_batch:
            answer = self._run_inline(batch, arrival)
            if answer is not None:
                return answer
        job = self._submit(batch, arrival, timeout_s)
        loop = self._loop
        assert loop is not None
        timer = loop.call_later(timeout_s, self._expire, job, timeout_s)
        try:
            return await job.future
        finally:
            timer.cancel()
            job.dead = True  # finished, timed out or cancelled: nothing of it may run any more

    def _run_inline(self, batch: np.ndarray, arrival: Arrival | None) -> Answer | None:
        """Run on the event loop if nothing is queued or running; None if the thread has work after all."""
        with self.cond:
            if self._pending or self._executing or self._closing:
                return None
            self._executing = True
        if arrival is not None:
            arrival.leave()
        start = time.perf_counter()
        try:
            logits = self.runtime.infer(batch)
        except Exception:
            log.exception("runtime %s failed on a batch of %d", self.runtime.name, len(batch))
            raise InferenceFailed("inference failed") from None
        finally:
            with self.cond:
                self._executing = False
                self.cond.notify()
        compute = time.perf_counter() - start
        b = len(batch)
        self._record(b, compute)
        return Answer(logits, 0.0, compute, (b,) * b)

    def _record(self, b: int, compute: float) -> None:
        if b == 1:
            self._batch1.append(compute)
        self.metrics.batch_size.observe(b)
        self.metrics.inference_seconds.observe(compute)
        self.stats.record_batch(b, compute)

    def _submit(self, batch: np.ndarray, arrival: Arrival | None, timeout_s: float) -> _Job:
        if self._closing or self._thread is None:
            raise Overloaded("the service is shutting down; retry on another instance")
        n = batch.shape[0]
        now = time.perf_counter()
        job = _Job(self._loop.create_future(), n, now + timeout_s)  # type: ignore[union-attr]
        with self.cond:
            if len(self._pending) + n > self.max_queue:
                self.metrics.rejected.inc(n)
                raise Overloaded(f"queue full ({len(self._pending)}/{self.max_queue} samples waiting); retry shortly")
            if arrival is not None:
                arrival._batcher = None  # left without a second notify: this one follows
                self.arriving_count -= 1
            self._pending.extend(_Item(job, i, batch[i], now) for i in range(n))
            self.cond.notify()
        return job

    def _expire(self, job: _Job, timeout_s: float) -> None:
        if not job.future.done():
            job.dead = True
            self.metrics.timeouts.inc(job.n)
            job.future.set_exception(Overloaded(f"request timed out after {timeout_s:g} s before it was served"))

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Refuse new work, let the thread finish what is queued, then stop it."""
        self._closing = True
        with self.cond:
            self.cond.notify_all()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout_s)
            if self._thread.is_alive():
                log.warning("batcher did not drain in %.1f s; failing %d queued samples", timeout_s, self.depth)
        with self.cond:
            left, self._pending = list(self._pending), deque()
        for item in left:
            if not item.job.future.done():
                item.job.future.set_exception(Overloaded("the service shut down before this request was served"))

    # -- the inference thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            while (items := self._next_batch()) is not None:
                if items:
                    self._execute(items)
        except BaseException:  # never expected: without this thread no request can be answered
            log.critical("inference thread died; the service cannot answer", exc_info=True)
            self._closing = True

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is due; None once closing with nothing queued."""
        with self.cond:
            while True:
                now = time.perf_counter()
                while self._pending and (self._pending[0].job.dead or self._pending[0].job.deadline <= now):
                    self._pending.popleft()
                if self._pending and not self._executing:
                    break
                if self._closing:
                    return None
                self.cond.wait()
            deadline = self._pending[0].enqueued + self.max_delay_s
            self.filling = True
            while len(self._pending) < self.max_batch and not self._closing:
                if self.policy == "arrivals" and self.arriving_count <= 0:
                    break
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self.cond.wait(left)
            self.filling = False
            items: list[_Item] = []
            now = time.perf_counter()
            while self._pending and len(items) < self.max_batch:
                item = self._pending.popleft()
                if not item.job.dead and item.job.deadline > now:  # expired ones are answered 503 by their timer
                    items.append(item)
            self._executing = bool(items)
            return items

    def _execute(self, items: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            x = np.stack([it.x for it in items])  # (B, C, H, W)
            logits = self.runtime.infer(x)
        except Exception:
            log.exception("runtime %s failed on a batch of %d", self.runtime.name, len(items))
            self._loop.call_soon_threadsafe(self._fail, items)  # type: ignore[union-attr]
            return
        finally:
            with self.cond:
                self._executing = False
        compute = time.perf_counter() - start
        self._loop.call_soon_threadsafe(self._deliver, items, logits, start, compute)  # type: ignore[union-attr]

    # -- back on the event loop ----------------------------------------------------------------------------
    def _deliver(self, items: list[_Item], logits: np.ndarray, start: float, compute: float) -> None:
        b = len(items)
        self._record(b, compute)
        for row, (job, i, _, enqueued) in enumerate(items):
            if job.future.done():
                continue
            if job.rows is None:
                job.rows = np.empty((job.n, logits.shape[1]), logits.dtype)
            job.rows[i] = logits[row]
            job.queue_s = max(job.queue_s, start - enqueued)
            job.compute_s = max(job.compute_s, compute)
            job.sizes[i] = b
            job.left -= 1
            if job.left == 0:
                job.future.set_result(Answer(job.rows, job.queue_s, job.compute_s, tuple(job.sizes)))

    @staticmethod
    def _fail(items: list[_Item]) -> None:
        for item in items:
            if not item.job.future.done():
                item.job.future.set_exception(InferenceFailed("inference failed"))
