"""Against a real `tinymim serve` (uvicorn subprocess on a free 127.0.0.1 port): standard client, batching,
overload, SIGTERM drain, memory. Traffic only ever goes to 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import signal
import struct
import threading
import time

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient

from serve.preprocess import Preprocessor
from tests.serve.helpers import image_bytes, process_tree, rss_kib, start_server
from tinymim.card import Preprocess

MODEL = "tiny-vit"


@pytest.fixture(scope="module")
def reference(tiny):
    sess = ort.InferenceSession(str(tiny.path / "model.onnx"), providers=["CPUExecutionProvider"])
    pre = Preprocessor.from_card(tiny.preprocess)
    return lambda imgs: sess.run(None, {"input": pre.batch(imgs)})[0]


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_tritonclient_unchanged(server, reference):
    c = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert "classification" in c.get_server_metadata()["extensions"]
    assert c.get_model_metadata(MODEL)["inputs"][0]["shape"] == [-1, 3, 32, 32]
    assert c.get_model_config(MODEL)["max_batch_size"] == 8

    imgs = [image_bytes(21), image_bytes(22, fmt="JPEG", size=(64, 48))]
    want = reference(imgs)
    x = Preprocessor.from_card(Preprocess((3, 32, 32), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))).batch(imgs)
    # FP32 tensor, client defaults (binary input, binary output)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_allclose(c.infer(MODEL, [inp]).as_numpy("logits"), want, atol=1e-4)
    # JSON both ways
    inp.set_data_from_numpy(x, binary_data=False)
    res = c.infer(MODEL, [inp], outputs=[httpclient.InferRequestedOutput("logits", binary_data=False)], request_id="7")
    np.testing.assert_allclose(res.as_numpy("logits"), want, atol=1e-4)
    assert res.get_response()["id"] == "7"
    params = res.get_response()["parameters"]  # where the time went, in the response's own parameters
    assert params["batch_size"] == 2 and params["compute_ms"] > 0 and params["decode_ms"] == 0  # a tensor: no decode
    assert params["total_ms"] >= params["queue_ms"] + params["compute_ms"]
    # encoded images as BYTES, gzip-compressed request, classification extension
    for shape in ([2], [2, 1]):
        inp = httpclient.InferInput("input", shape, "BYTES")
        inp.set_data_from_numpy(np.array(imgs, dtype=np.object_).reshape(shape))
        res = c.infer(
            MODEL,
            [inp],
            outputs=[httpclient.InferRequestedOutput("logits", class_count=2)],
            request_compression_algorithm="gzip",
        )
        top = res.as_numpy("logits")
        assert top.shape == (2, 2)
        assert [int(e.split(b":")[1]) for e in top[:, 0]] == list(want.argmax(1))
    stats = c.get_inference_statistics(MODEL)["model_stats"][0]
    assert stats["inference_count"] >= 6 and stats["inference_stats"]["success"]["count"] >= 4


async def _burst(url: str, bodies: list[tuple[str, bytes, dict]], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        return await asyncio.gather(*(c.post(p, content=b, headers=h) for p, b, h in bodies))


def _v2_bytes(img: bytes) -> tuple[str, bytes, dict]:
    blob = struct.pack("<I", len(img)) + img
    head = b'{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":%d}}]}' % len(
        blob
    )
    return f"/v2/models/{MODEL}/infer", head + blob, {"Inference-Header-Content-Length": str(len(head))}


def test_concurrent_requests_are_batched(tiny, tmp_path, reference):
    # "always" with a long delay: a batch closes when 8 samples are queued, not when a timer that a fast or a
    # loaded machine may beat fires, so batches of several samples form on any CPU.
    server = start_server(
        tiny.path, tmp_path, "--batch-policy", "always", "--max-queue-delay-ms", "2000", "--max-batch-size", "8"
    )
    try:
        _check_batched(server, reference)
    finally:
        assert server.stop() == 0


def _check_batched(server, reference):
    before = httpx.get(server.url + "/metrics").text
    imgs = [image_bytes(100 + i) for i in range(48)]
    bodies = [
        _v2_bytes(im) if i % 2 else ("/v1/classify?top_k=1", im, {"content-type": "image/png"})
        for i, im in enumerate(imgs)
    ]
    rs = asyncio.run(_burst(server.url, bodies, 24))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200][:3]
    want = reference(imgs)
    for i, r in enumerate(rs):
        if i % 2:
            np.testing.assert_allclose(r.json()["outputs"][0]["data"], want[i], atol=1e-4)
        else:
            assert r.json()["predictions"][0]["indices"][0] == int(want[i].argmax())
    after = httpx.get(server.url + "/metrics").text
    n = _metric(after, "tinymim_batch_size_count") - _metric(before, "tinymim_batch_size_count")
    singles = _metric(after, 'tinymim_batch_size_bucket{le="1.0"}') - _metric(
        before, 'tinymim_batch_size_bucket{le="1.0"}'
    )
    total = _metric(after, "tinymim_batch_size_sum") - _metric(before, "tinymim_batch_size_sum")
    assert total == 48 and n < 48 and singles < n, (n, singles)  # some batches held more than one sample


def test_overload_sheds_with_503_and_never_mixes_answers(tiny, tmp_path, reference):
    # The queue (4) can never fill a batch (8), so every batch waits the full 2 s (longer than any stall of a
    # loaded machine): the burst overflows it.
    srv = start_server(
        tiny.path,
        tmp_path,
        "--max-queue",
        "4",
        "--max-batch-size",
        "8",
        "--max-queue-delay-ms",
        "2000",
        "--batch-policy",
        "always",
    )
    try:
        imgs = [image_bytes(300 + i, fmt="JPEG") for i in range(64)]
        rs = asyncio.run(_burst(srv.url, [_v2_bytes(im) for im in imgs], 64))
        want = reference(imgs)
        codes = [r.status_code for r in rs]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) >= 4, codes
        for i, r in enumerate(rs):
            if r.status_code == 503:
                assert r.headers["retry-after"] and "queue full" in r.json()["error"]
            else:
                np.testing.assert_allclose(r.json()["outputs"][0]["data"], want[i], atol=1e-4)  # its own image
        assert "tinymim_rejected_total" in httpx.get(srv.url + "/metrics").text
        # still healthy once the burst is over
        assert httpx.post(srv.url + "/v1/classify", content=imgs[0]).status_code == 200
    finally:
        assert srv.stop() == 0


def test_sigterm_drains_in_flight_requests(tiny, tmp_path, reference):
    # The queued requests wait 6 s for batch-mates: time for the refusal check below even on a loaded machine.
    srv = start_server(tiny.path, tmp_path, "--max-queue-delay-ms", "6000", "--batch-policy", "always")
    imgs = [image_bytes(500 + i) for i in range(6)]
    results: dict[int, httpx.Response | Exception] = {}

    def send(i: int) -> None:
        try:
            results[i] = httpx.post(
                srv.url + f"/v2/models/{MODEL}/infer",
                content=_v2_bytes(imgs[i])[1],
                headers=_v2_bytes(imgs[i])[2],
                timeout=30,
            )
        except Exception as err:  # noqa: BLE001 - recorded and asserted below
            results[i] = err

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while _metric(httpx.get(srv.url + "/metrics").text, "tinymim_queue_depth") < 6:
        assert time.monotonic() < deadline, "requests never reached the queue"
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGTERM)
    refused_while_in_flight = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # new connections are refused while the queued requests still wait
        try:
            httpx.get(srv.url + "/v2/health/live", timeout=1)
        except httpx.TransportError:
            refused_while_in_flight = len(results) == 0
            break
        time.sleep(0.05)
    assert refused_while_in_flight
    for t in threads:
        t.join(30)
    assert srv.proc.wait(30) == 0
    want = reference(imgs)
    for i in range(6):
        r = results[i]
        assert isinstance(r, httpx.Response) and r.status_code == 200, r
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], want[i], atol=1e-4)
    assert "stopped" in srv.log()


def test_rss_does_not_grow(server):
    imgs = [image_bytes(700 + i) for i in range(16)]
    x = np.zeros((1, 3, 32, 32), np.float32)
    head = (
        b'{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}'
        % x.nbytes
    )
    tensor_req = (f"/v2/models/{MODEL}/infer", head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))})
    samples = []

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            for _ in range(12):
                bodies = []
                for i in range(250):
                    if i % 3 == 0:
                        bodies.append(_v2_bytes(imgs[i % 16]))
                    elif i % 3 == 1:
                        bodies.append(tensor_req)
                    else:
                        bodies.append(("/v1/classify", imgs[i % 16], {"content-type": "image/png"}))
                sem = asyncio.Semaphore(8)

                async def one(p, b, h, sem=sem):
                    async with sem:
                        r = await c.post(p, content=b, headers=h)
                        assert r.status_code == 200, r.text

                await asyncio.gather(*(one(*b) for b in bodies))
                samples.append(rss_kib(server.proc.pid))

    asyncio.run(run())
    # 3000 requests. Ignore the first third (allocator and caches warming up), then: no trend.
    tail = np.array(samples[4:], float)
    slope_kib_per_round = np.polyfit(np.arange(len(tail)), tail, 1)[0]
    assert tail[-1] - tail[0] < 4096 and slope_kib_per_round < 256, samples


def test_body_limit_on_the_wire(server):
    big = b"\0" * (17 << 20)  # default limit: 16 MiB
    r = httpx.post(server.url + "/v1/classify", content=big, headers={"content-type": "image/png"}, timeout=30)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunked():  # no Content-Length: the server counts streamed bytes and stops at the limit
        for _ in range(17):
            yield b"\0" * (1 << 20)

    r = httpx.post(server.url + f"/v2/models/{MODEL}/infer", content=chunked(), timeout=30)
    assert r.status_code == 413
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_worker_processes_and_cpu_pinning(tiny, tmp_path, reference):
    """--workers 2: two processes share the port, each with its own runtime; --cpus 1 pins them to one CPU."""
    srv = start_server(tiny.path, tmp_path, "--workers", "2", "--cpus", "1", env={"TINYMIM_THREADS": None})
    try:
        # the server answers once one worker is ready; the metrics below need both (the other may still be loading)
        deadline = time.monotonic() + 60
        while srv.log().count(" ready in ") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        imgs = [image_bytes(900 + i) for i in range(24)]
        rs = asyncio.run(_burst(srv.url, [_v2_bytes(im) for im in imgs], 12))
        want = reference(imgs)
        for i, r in enumerate(rs):
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["outputs"][0]["data"], want[i], atol=1e-4)
            assert "compute" in r.headers["server-timing"]
        info = httpx.get(srv.url + "/v1/model").json()
        assert info["cpus"] == 1 and info["threads"] == 1  # its share of the pinned CPU
        for _ in range(4):  # whichever worker answers /metrics, it reports both workers' requests
            text = httpx.get(srv.url + "/metrics").text
            assert _metric(text, 'tinymim_request_stage_seconds_count{stage="compute"}') == 24
            assert _metric(text, "tinymim_batch_size_sum") == 24 and _metric(text, "tinymim_ready") == 1
        assert len([p for p in process_tree(srv.proc.pid) if p != srv.proc.pid]) >= 2
    finally:
        code = srv.stop()
    assert code == 0 and srv.log().count("stopped") == 2  # each worker drained and stopped


def test_requests_sent_one_at_a_time_run_inline(tiny, tmp_path, reference):
    """With the inline lane on (any batch-1 compute qualifies here), requests sent one at a time never queue;
    the HTTP server's in-flight count is what tells the batcher it is alone."""
    srv = start_server(tiny.path, tmp_path, env={"TINYMIM_INLINE_MAX_COMPUTE_MS": "10000"})
    try:
        imgs = [image_bytes(950 + i) for i in range(5)]
        with httpx.Client(base_url=srv.url) as c:
            for im in imgs:
                r = c.post("/v1/classify", content=im, headers={"content-type": "image/png"})
                t = r.json()["timing"]
                assert r.status_code == 200 and t["queue_ms"] == 0 and t["batch_sizes"] == [1], t
        assert "idle requests run on the event loop" in srv.log()
    finally:
        assert srv.stop() == 0
