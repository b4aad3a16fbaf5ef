"""The dynamic batcher on a real ONNX Runtime session: batching, routing, queue limits, timeouts, drain."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serve.batcher import BATCH1_WINDOW, DynamicBatcher, InferenceFailed
from serve.bundle import load_bundle
from serve.errors import Overloaded
from serve.metrics import ServiceMetrics
from serve.runtimes import open_runtime
from serve.stats import ModelStats


@pytest.fixture(scope="module")
def runtime(tiny):
    b = load_bundle(tiny.path)
    rt = open_runtime(b, b.artifact("onnx-fp32"), threads=1)
    yield rt
    rt.close()


def _batcher(runtime, **kw):
    kw = {"max_batch": 8, "max_delay_s": 0.05, "max_queue": 64, "policy": "always", **kw}
    return DynamicBatcher(runtime, metrics=ServiceMetrics(8), stats=ModelStats("m", "1"), **kw)


def _samples(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 3, 32, 32)).astype(np.float32)


def test_concurrent_requests_form_one_batch_and_get_their_own_rows(runtime):
    xs = _samples(6)
    want = runtime.infer(xs[:, 0])

    async def main():
        # The batch closes when it is full (6), never on the 30 s timer: no race with a loaded machine's clock.
        b = _batcher(runtime, max_batch=6, max_delay_s=30.0)
        await b.warmup((3, 32, 32), [1, 6])
        b.start()
        res = await asyncio.gather(*(b.run(x, timeout_s=60) for x in xs))
        await b.drain()
        return b, res

    b, res = asyncio.run(main())
    for i, r in enumerate(res):
        assert r.batch_sizes == (6,) and r.logits.shape == (1, 10)
        np.testing.assert_allclose(r.logits[0], want[i], atol=1e-5)
        assert r.queue_s >= 0 and r.compute_s > 0
    assert b.stats.execution_count == 1 and b.stats.inference_count == 6


def test_a_request_split_over_batches_gets_its_rows_in_order(runtime):
    x = _samples(7, seed=3)[:, 0]  # one request of 7 samples, batches of at most 4
    want = runtime.infer(x)

    async def main():
        b = _batcher(runtime, max_batch=4)
        b.start()
        r = await b.run(x, timeout_s=5)
        await b.drain()
        return r

    r = asyncio.run(main())
    np.testing.assert_allclose(r.logits, want, atol=1e-5)
    assert sorted(r.batch_sizes) == [3, 3, 3, 4, 4, 4, 4]


def test_batches_are_capped_at_max_batch(runtime):
    async def main():
        b = _batcher(runtime, max_batch=4)
        b.start()
        res = await asyncio.gather(*(b.run(x, timeout_s=5) for x in _samples(10)))
        await b.drain()
        return res

    sizes = sorted(r.batch_sizes[0] for r in asyncio.run(main()))
    assert max(sizes) == 4 and len(sizes) == 10


def test_full_queue_is_refused_at_once(runtime):
    async def main():
        # The first sample waits 30 s for batch-mates (drain, not the timer, releases it): still queued below.
        b = _batcher(runtime, max_queue=3, max_delay_s=30.0)
        b.start()
        first = asyncio.create_task(b.run(_samples(1)[0], timeout_s=60))
        await asyncio.sleep(0)
        assert b.depth == 1
        with pytest.raises(Overloaded) as info:
            await b.run(np.zeros((3, 3, 32, 32), np.float32), timeout_s=5)
        assert info.value.status == 503 and info.value.headers["Retry-After"]
        await b.drain()
        assert (await first).logits.shape == (1, 10)

    asyncio.run(main())


def test_timeout_cancels_work_still_queued(runtime):
    async def main():
        b = _batcher(runtime, max_delay_s=0.3)
        b.start()
        with pytest.raises(Overloaded, match="timed out"):
            await b.run(_samples(1)[0], timeout_s=0.02)
        await asyncio.sleep(0.4)  # past the batch delay: the cancelled sample must not run
        assert b.stats.execution_count == 0 and b.depth == 0
        await b.run(_samples(1)[0], timeout_s=5)  # the worker is still alive
        await b.drain()
        return b

    b = asyncio.run(main())
    assert b.stats.execution_count == 1 and b.metrics.timeouts._value.get() == 1


def test_arrivals_policy_does_not_wait_for_nobody(runtime):
    # The delay is far longer than any stall of a loaded machine, so "did not wait for it" is unambiguous.
    async def main():
        b = _batcher(runtime, max_delay_s=30.0, policy="arrivals")
        b.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await b.run(_samples(1)[0], timeout_s=5)
        dt = loop.time() - t0
        with b.arriving() as arrival:  # an announced request makes the worker wait for it
            task = asyncio.create_task(b.run(_samples(1)[0], timeout_s=5))
            await asyncio.sleep(0.05)
            assert b.depth == 1  # queued, waiting for the announced one
            r2 = await b.run(_samples(1, 1)[0], timeout_s=5, arrival=arrival)
        r1 = await task
        await b.drain()
        return dt, r1, r2

    dt, r1, r2 = asyncio.run(main())
    assert dt < 10.0  # far below the 30 s delay: nobody else was arriving
    assert r1.batch_sizes == r2.batch_sizes == (2,)


def test_drain_finishes_queued_work_then_refuses(runtime):
    async def main():
        b = _batcher(runtime, max_delay_s=0.2)
        b.start()
        tasks = [asyncio.create_task(b.run(x, timeout_s=5)) for x in _samples(3)]
        await asyncio.sleep(0.01)
        await b.drain()
        assert all(t.done() and not t.exception() for t in tasks)
        with pytest.raises(Overloaded, match="shutting down"):
            await b.run(_samples(1)[0], timeout_s=5)

    asyncio.run(main())


def test_runtime_error_fails_the_batch_and_the_thread_lives_on(runtime, caplog):
    class Flaky:
        name, max_batch, calls = "flaky", 8, 0

        def infer(self, x):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("boom-17")
            return runtime.infer(x)

    async def main():
        b = _batcher(Flaky(), policy="arrivals")
        b.start()
        with pytest.raises(InferenceFailed):
            await b.run(_samples(1)[0], timeout_s=5)
        r = await b.run(_samples(1)[0], timeout_s=5)
        await b.drain()
        return r

    assert asyncio.run(main()).logits.shape == (1, 10)
    assert "boom-17" in caplog.text


def test_an_idle_service_runs_a_fast_model_on_the_event_loop(runtime):
    """Inline: no queue wait at all; with another request arriving, the thread batches them as before."""

    async def main():
        b = _batcher(runtime, policy="arrivals", inline_max_s=1.0, max_delay_s=30.0)
        await b.warmup((3, 32, 32), [1])
        b.start()
        alone = await b.run(_samples(1)[0], timeout_s=5, alone=True)
        with b.arriving() as other:  # someone else is arriving: wait for them and batch
            task = asyncio.create_task(b.run(_samples(1)[0], timeout_s=5, alone=True))
            await asyncio.sleep(0.05)
            r2 = await b.run(_samples(1, 1)[0], timeout_s=5, arrival=other, alone=True)
        r1 = await task
        off = _batcher(runtime, policy="arrivals", inline_max_s=0.0)
        await off.warmup((3, 32, 32), [1])
        off.start()
        threaded = await off.run(_samples(1)[0], timeout_s=5, alone=True)
        busy_http = await b.run(_samples(1)[0], timeout_s=5, alone=False)  # other requests in the HTTP server
        await b.drain()
        await off.drain()
        return b, off, alone, r1, r2, threaded, busy_http

    b, off, alone, r1, r2, threaded, busy_http = asyncio.run(main())
    assert b.inline and not off.inline
    assert alone.queue_s == 0.0 and alone.batch_sizes == (1,)
    assert r1.batch_sizes == r2.batch_sizes == (2,) and r1.queue_s > 0
    assert threaded.queue_s > 0 and busy_http.queue_s > 0
    np.testing.assert_allclose(alone.logits, runtime.infer(_samples(1)[0]), atol=1e-5)
    assert b.stats.execution_count == 3 and b.stats.inference_count == 4


def test_the_batch1_estimate_ignores_preemptions_and_follows_a_slower_machine(runtime):
    """A few batches of one slowed by a busy core do not switch the inline lane off; a machine that got slower
    (every recent batch of one slow) does."""

    async def main():
        b = _batcher(runtime, policy="arrivals", inline_max_s=1.0)
        await b.warmup((3, 32, 32), [1])
        return b

    b = asyncio.run(main())
    assert b.inline
    for _ in range(BATCH1_WINDOW // 2):  # preempted runtime calls: descheduled for 5 s each
        b._record(1, 5.0)
    assert b.inline and b.batch1_s < 1.0
    for _ in range(BATCH1_WINDOW):
        b._record(1, 2.0)
    assert not b.inline and b.batch1_s == 2.0


def test_warmup_runs_the_powers_of_two_first_and_the_other_sizes_while_it_is_quick(runtime, monkeypatch):
    b = _batcher(runtime, max_batch=6)
    asyncio.run(b.warmup((3, 32, 32)))
    assert b.warmed == [1, 2, 4, 6, 3, 5]  # a millisecond model: every size
    monkeypatch.setattr("serve.batcher.WARMUP_ALL_SIZES_S", 0.0)  # as if each batch took long
    slow = _batcher(runtime, max_batch=8)
    asyncio.run(slow.warmup((3, 32, 32)))
    assert slow.warmed == [1, 2, 4, 8] and slow.batch1_s < 1.0
