"""In-process tests of /v1, errors, limits, API key and the OpenAPI page (TestClient runs the lifespan)."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serve.app import create_app
from serve.timing import parse_server_timing
from tests.serve.conftest import LABELS, make_settings
from tests.serve.helpers import image_bytes


def test_raw_body_top_k_and_timing(client):
    r = client.post("/v1/classify?top_k=3", content=image_bytes(1), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    (pred,) = body["predictions"]
    assert len(pred["labels"]) == 3 and all(lbl in LABELS for lbl in pred["labels"])
    assert pred["labels"] == [LABELS[i] for i in pred["indices"]]
    assert pred["scores"] == sorted(pred["scores"], reverse=True) and 0 < sum(pred["scores"]) <= 1
    t = body["timing"]
    stages = ("decode_ms", "preprocess_ms", "queue_ms", "compute_ms", "encode_ms")
    assert all(t[s] >= 0 for s in stages) and t["decode_ms"] > 0 and t["compute_ms"] > 0
    assert t["total_ms"] >= sum(t[s] for s in stages) and t["batch_sizes"] == [1]
    assert body["artifact"] == "onnx-fp32" and body["model"] == "tiny-vit"
    # the same split in the standard Server-Timing header (milliseconds), as browsers and bench read it
    header = parse_server_timing(r.headers["server-timing"])
    assert header["batch"] == "1" and header["total"] == pytest.approx(t["total_ms"], abs=1e-3)
    for s in stages:
        assert header[s.removesuffix("_ms")] == pytest.approx(t[s], abs=1e-3)


def test_multipart_several_images_match_single_requests(client):
    imgs = [image_bytes(s, fmt=f) for s, f in ((1, "PNG"), (2, "JPEG"), (3, "PNG"))]
    r = client.post("/v1/classify?top_k=10", files=[("files", (f"{i}.img", im)) for i, im in enumerate(imgs)])
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 3 and r.json()["timing"]["batch_sizes"] == [3, 3, 3]
    assert parse_server_timing(r.headers["server-timing"])["batch"] == "3 3 3"
    for im, pred in zip(imgs, preds, strict=True):
        single = client.post("/v1/classify?top_k=10", files={"file": ("x", im)}).json()["predictions"][0]
        assert single["indices"] == pred["indices"]
        np.testing.assert_allclose(single["scores"], pred["scores"], rtol=1e-5, atol=1e-6)
    assert preds[0]["scores"] != preds[1]["scores"]


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({"content": b"not an image", "headers": {"content-type": "image/png"}}, 415, "could not identify"),
        ({"content": image_bytes(1)[:60], "headers": {"content-type": "image/png"}}, 400, "truncated"),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty image"),
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415, "Content-Type"),
        ({"files": {"field": (None, "text only")}}, 400, "no file parts"),
    ],
)
def test_bad_images_are_clear_4xx(client, kwargs, status, needle):
    r = client.post("/v1/classify", **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_top_k_and_image_count_limits(client):
    assert client.post("/v1/classify?top_k=0", content=image_bytes(1)).status_code == 400
    r = client.post("/v1/classify?top_k=11", content=image_bytes(1))
    assert r.status_code == 400 and "10 classes" in r.json()["error"]
    r = client.post("/v1/classify", files=[("f", (str(i), image_bytes(i))) for i in range(9)])
    assert r.status_code == 400 and "1..8" in r.json()["error"]


def test_decompression_bomb_refused(client):
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")  # 48 MP, ~50 KB compressed
    r = client.post("/v1/classify", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "pixels" in r.json()["error"]


def test_body_limit_declared_and_streamed(tiny):
    app = create_app(make_settings(tiny.path, max_body_bytes=4096))
    with TestClient(app) as c:
        big = b"x" * 5000
        r = c.post("/v1/classify", content=big, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "4096" in r.json()["error"]

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b"y" * 1000

        r = c.post("/v2/models/tiny-vit/infer", content=chunks())
        assert r.status_code == 413, r.text
        r = c.post("/v1/classify", files={"f": ("a", b"z" * 8000)})
        assert r.status_code == 413
        assert c.post("/v1/classify", content=image_bytes(1)).status_code == 200


def test_api_key(tiny):
    app = create_app(make_settings(tiny.path, api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/v2/health/ready").status_code == 200  # probes stay open
        r = c.post("/v1/classify", content=image_bytes(1))
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert c.get("/v2/models/tiny-vit", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert (
            c.post("/v1/classify", content=image_bytes(1), headers={"Authorization": "Bearer s3cret"}).status_code
            == 200
        )
        assert c.get("/v2/models/tiny-vit", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_not_ready_before_lifespan(tiny):
    c = TestClient(create_app(make_settings(tiny.path)))  # no `with`: the lifespan never runs
    assert c.get("/v2/health/live").status_code == 200
    r = c.get("/v2/health/ready")
    assert r.status_code == 503 and "error" in r.json()
    assert c.get("/v2/models/tiny-vit/ready").status_code == 503
    assert c.post("/v1/classify", content=image_bytes(1)).status_code == 503


def test_unexpected_errors_are_generic_500_and_logged(tiny, caplog, monkeypatch):
    app = create_app(make_settings(tiny.path))
    with TestClient(app, raise_server_exceptions=False) as c:
        service = app.state.service

        def broken_infer(x):  # fault injection inside the runtime thread
            raise RuntimeError("secret-detail-42")

        monkeypatch.setattr(service.selection.runtime, "infer", broken_infer)
        with caplog.at_level(logging.ERROR):
            r = c.post("/v1/classify", content=image_bytes(1))
        assert r.status_code == 500 and r.json() == {"error": "internal server error"}
        assert "secret-detail-42" in caplog.text and "Traceback" in caplog.text

        async def broken_preprocess(images, timing):
            raise KeyError("other-secret")

        monkeypatch.setattr(service, "preprocess", broken_preprocess)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            r = c.post("/v1/classify", content=image_bytes(1))
        assert r.status_code == 500 and "other-secret" not in r.text and "other-secret" in caplog.text
        assert c.get("/v2/health/ready").status_code == 200  # still serving


def test_openapi_documents_classify(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/classify"]["post"]
    assert {"image/jpeg", "multipart/form-data", "application/octet-stream"} <= set(op["requestBody"]["content"])
    assert any(p["name"] == "top_k" for p in op["parameters"])
    assert "ClassifyResponse" in str(op["responses"]["200"])


def test_metrics_exposition(client):
    client.post("/v1/classify", content=image_bytes(5))
    client.get("/does/not/exist")
    text = client.get("/metrics").text
    assert 'tinymim_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    for name in (
        "tinymim_inference_seconds_bucket",
        "tinymim_batch_size_bucket",
        "tinymim_queue_depth",
        "tinymim_cold_start_seconds",
        "tinymim_peak_rss_bytes",
    ):
        assert name in text
    for stage in ("decode", "preprocess", "queue", "compute", "encode"):
        count = _sample(text, f'tinymim_request_stage_seconds_count{{stage="{stage}"}}')
        assert count >= 1  # one observation per answered request and stage
    assert _sample(text, 'tinymim_request_stage_seconds_sum{stage="compute"}') > 0
    assert _sample(text, "tinymim_peak_rss_bytes") > 10 * 2**20 and _sample(text, "tinymim_cold_start_seconds") > 0


def _sample(text: str, name: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[-1])
