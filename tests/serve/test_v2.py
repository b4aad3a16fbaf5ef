"""In-process tests of the v2 protocol: metadata, config, stats, JSON/binary/compressed infer, BYTES, errors."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib

import numpy as np
import onnxruntime as ort
import pytest

from serve.preprocess import Preprocessor
from serve.v2.codec import HEADER_LENGTH
from tests.serve.conftest import LABELS, MAX_BATCH
from tests.serve.helpers import image_bytes

INFER = "/v2/models/tiny-vit/infer"


@pytest.fixture(scope="module")
def session(tiny):
    return ort.InferenceSession(str(tiny.path / "model.onnx"), providers=["CPUExecutionProvider"])


def _expected(session, x):
    return session.run(None, {"input": x})[0]


def _binary(header: dict, blobs: list[bytes]) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {HEADER_LENGTH: str(len(head))}


def _parse_binary_response(r) -> tuple[dict, bytes]:
    n = int(r.headers[HEADER_LENGTH])
    return json.loads(r.content[:n]), r.content[n:]


def test_server_and_model_metadata(client):
    meta = client.get("/v2").json()
    assert meta["name"] == "tinymim" and set(meta["extensions"]) == {
        "binary_tensor_data",
        "classification",
        "model_configuration",
        "statistics",
    }
    m = client.get("/v2/models/tiny-vit").json()
    assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert m["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert m["versions"] == ["1"] and m["platform"] == "onnxruntime_onnx"
    assert client.get("/v2/models/tiny-vit/versions/1").json() == m
    assert client.get("/v2/models/tiny-vit/versions/1/ready").status_code == 200
    assert client.get("/v2/models/tiny-vit/ready").status_code == 200
    for path in (
        "/v2/models/other",
        "/v2/models/other/ready",
        "/v2/models/tiny-vit/versions/2",
        "/v2/models/other/config",
        "/v2/models/tiny-vit/versions/9/infer",
    ):
        r = client.get(path) if not path.endswith("infer") else client.post(path, content=b"{}")
        assert r.status_code == 404 and "error" in r.json(), path


def test_model_config_for_perf_analyzer(client):
    cfg = client.get("/v2/models/tiny-vit/config").json()
    assert cfg["max_batch_size"] == MAX_BATCH
    assert cfg["input"] == [{"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": [3, 32, 32]}]
    assert cfg["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 5000
    assert cfg["dynamic_batching"]["preferred_batch_size"][-1] == MAX_BATCH


def test_json_fp32_infer_matches_runtime(client, session):
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    req = {"id": "abc", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]}
    r = client.post(INFER, json=req)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "abc" and body["model_name"] == "tiny-vit"
    (out,) = body["outputs"]
    assert out["name"] == "logits" and out["shape"] == [3, 10] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 10), _expected(session, x), atol=1e-5)


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
def test_binary_infer_and_compression(client, session, encoding):
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    body, headers = _binary(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 3, 32, 32],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        },
        [x.tobytes()],
    )
    if encoding == "gzip":
        body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    elif encoding == "deflate":
        body, headers = zlib.compress(body), {**headers, "Content-Encoding": "deflate"}
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    head, tail = _parse_binary_response(r)
    (out,) = head["outputs"]
    assert out["parameters"]["binary_data_size"] == len(tail) == 2 * 10 * 4
    np.testing.assert_allclose(np.frombuffer(tail, "<f4").reshape(2, 10), _expected(session, x), atol=1e-5)


@pytest.mark.parametrize("shape", [[2], [2, 1]])
def test_bytes_images_binary_and_classification(client, session, tiny, shape):
    imgs = [image_bytes(7, fmt="JPEG"), image_bytes(8, size=(50, 70))]
    blob = b"".join(struct.pack("<I", len(i)) + i for i in imgs)
    body, headers = _binary(
        {
            "inputs": [
                {"name": "input", "shape": shape, "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}
            ],
            "outputs": [
                {"name": "logits", "parameters": {"classification": 3}},
                {"name": "logits", "parameters": {"binary_data": True}},
            ],
        },
        [blob],
    )
    r = client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    head, tail = _parse_binary_response(r)
    cls, raw = head["outputs"]
    pre = Preprocessor.from_card(tiny.preprocess)
    want = _expected(session, pre.batch(imgs))
    np.testing.assert_allclose(np.frombuffer(tail, "<f4").reshape(2, 10), want, atol=1e-5)
    assert cls["datatype"] == "BYTES" and cls["shape"] == [2, 3]
    for b in range(2):
        entries = cls["data"][3 * b : 3 * b + 3]
        idx = [int(e.split(":")[1]) for e in entries]
        assert idx == list(np.argsort(-want[b], kind="stable")[:3])
        assert [e.split(":")[2] for e in entries] == [LABELS[i] for i in idx]
        np.testing.assert_allclose([float(e.split(":")[0]) for e in entries], want[b, idx], atol=1e-5)


def test_bytes_images_json_base64(client, session, tiny):
    img = image_bytes(9)
    req = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(img).decode()]}]}
    r = client.post(INFER, json=req)
    assert r.status_code == 200, r.text
    want = _expected(session, Preprocessor.from_card(tiny.preprocess).batch([img]))
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], want.ravel(), atol=1e-5)


def _fp32(shape, data=None, **extra):
    n = int(np.prod(shape)) if all(d >= 0 for d in shape) else 1
    return {
        "inputs": [
            {"name": "input", "shape": shape, "datatype": "FP32", "data": [0.0] * n if data is None else data, **extra}
        ]
    }


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (_fp32([1, 3, 16, 16]), "shape [B,3,32,32]"),
        (_fp32([1, 3, 32, 32], data=[0.0] * 5), "holds 3072 elements"),
        (_fp32([9, 3, 32, 32]), "1..8"),
        (_fp32([1, 3, 32, 32], data=["a"] * 3072), "not valid FP32"),
        (_fp32([1, 3, 32, 32], data=[float("nan")] * 3072), "NaN"),
        (
            {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "INT64", "data": [0] * 3072}]},
            "must be FP32",
        ),
        ({"inputs": [{"name": "input", "shape": [1], "datatype": "WAT", "data": [0]}]}, "unknown datatype"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}]}, "unknown input"),
        (
            {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "BYTES", "data": ["aGk=", "aGk="]}]},
            "[B] or [B,1]",
        ),
        ({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}, "base64"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}]}, "identify"),
        ({**_fp32([1, 3, 32, 32]), "outputs": [{"name": "probs"}]}, "unknown output"),
        (
            {**_fp32([1, 3, 32, 32]), "outputs": [{"name": "logits", "parameters": {"classification": "x"}}]},
            "classification",
        ),
        ({**_fp32([1, 3, 32, 32]), "parameters": {"timeout": -3}}, "timeout"),
    ],
)
def test_bad_v2_requests_are_4xx_with_message(client, payload, needle):
    r = client.post(INFER, content=json.dumps(payload))
    assert 400 <= r.status_code < 500, r.text
    assert needle in r.json()["error"]


def test_bad_binary_framing(client):
    x = np.zeros((1, 3, 32, 32), np.float32).tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 3, 32, 32],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(x)},
                }
            ]
        }
    ).encode()
    for hl, body in (
        ("abc", head + x),
        (str(len(head) + len(x) + 5), head + x),
        ("5", head + x),
        (str(len(head)), head + x[:-4]),
        (str(len(head)), head + x + b"extra"),
    ):
        r = client.post(INFER, content=body, headers={HEADER_LENGTH: hl})
        assert r.status_code == 400, (hl, r.text)
    r = client.post(INFER, content=b"\x00garbage", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["error"]
    r = client.post(INFER, content=b"x", headers={"Content-Encoding": "br"})
    assert r.status_code == 415


def test_gzip_bomb_refused(tiny):
    from fastapi.testclient import TestClient

    from serve.app import create_app
    from tests.serve.conftest import make_settings

    bomb = gzip.compress(b"\x00" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    with TestClient(create_app(make_settings(tiny.path))) as c:
        r = c.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["error"]


def test_statistics_count_samples_and_batches(client):
    before = client.get("/v2/models/tiny-vit/stats").json()["model_stats"][0]
    x = np.zeros((4, 3, 32, 32), np.float32)
    assert (
        client.post(
            INFER,
            json={
                "inputs": [{"name": "input", "shape": [4, 3, 32, 32], "datatype": "FP32", "data": x.ravel().tolist()}]
            },
        ).status_code
        == 200
    )
    client.post(INFER, content=b"{not json")
    after = client.get("/v2/models/tiny-vit/stats").json()["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 4
    assert after["execution_count"] - before["execution_count"] == 1
    s0, s1 = before["inference_stats"], after["inference_stats"]
    assert s1["success"]["count"] - s0["success"]["count"] == 1
    assert s1["fail"]["count"] - s0["fail"]["count"] == 1
    assert s1["compute_infer"]["ns"] > s0["compute_infer"]["ns"]
    assert any(b["batch_size"] == 4 for b in after["batch_stats"])


def test_v2_timeout_parameter_cancels_queued_work(client):
    x = np.zeros((1, 3, 32, 32), np.float32)
    req = {
        "inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": x.ravel().tolist()}],
        "parameters": {"timeout": 1},
    }  # microseconds, as tritonclient sends it
    r = client.post(INFER, json=req)
    assert r.status_code == 503 and "timed out" in r.json()["error"] and r.headers["retry-after"]
    req["parameters"]["timeout"] = 10_000_000
    assert client.post(INFER, json=req).status_code == 200
