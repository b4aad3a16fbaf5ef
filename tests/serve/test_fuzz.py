"""Hypothesis-generated malformed requests to every route of a live server: never a 5xx, and it keeps answering."""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.serve.helpers import image_bytes

MODEL = "tiny-vit"
_SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=0, max_size=12)
_ROUTES = [
    "/v1/classify",
    "/v1/model",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/metrics",
    "/openapi.json",
    "/v2/models/{m}",
    "/v2/models/{m}/ready",
    "/v2/models/{m}/config",
    "/v2/models/{m}/stats",
    "/v2/models/{m}/infer",
    "/v2/models/{m}/versions/{v}",
    "/v2/models/{m}/versions/{v}/infer",
    "/v2/models/{m}/versions/{v}/config",
]
_DTYPES = ["FP32", "FP16", "BYTES", "INT8", "UINT64", "BOOL", "fp32", "", "NOPE"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=20,
)
shapes = st.lists(st.integers(-3, 40), max_size=5)


@st.composite
def v2_like(draw) -> dict:
    """Requests shaped like v2 inference, wrong in drawn ways."""
    inp = {
        "name": draw(st.sampled_from(["input", "x", ""])),
        "shape": draw(shapes),
        "datatype": draw(st.sampled_from(_DTYPES)),
    }
    if draw(st.booleans()):
        inp["data"] = draw(json_values | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40))
    if draw(st.booleans()):
        inp["parameters"] = {"binary_data_size": draw(st.integers(-5, 5000) | st.text(max_size=3) | st.none())}
    req: dict = {"inputs": draw(st.lists(st.just(inp), max_size=2))}
    if draw(st.booleans()):
        req["outputs"] = [
            {
                "name": draw(st.sampled_from(["logits", "other"])),
                "parameters": {
                    "classification": draw(st.integers(-2, 20) | st.booleans() | st.text(max_size=3)),
                    "binary_data": draw(st.booleans() | st.integers(0, 2)),
                },
            }
        ]
    if draw(st.booleans()):
        req["parameters"] = {
            "timeout": draw(st.integers(-5, 10**6) | st.floats() | st.text(max_size=4)),
            "binary_data_output": draw(json_values),
        }
    return req


@st.composite
def requests_(draw):
    # Mostly the two body-reading routes with the right method and right model; every route sometimes.
    template = draw(
        st.sampled_from(_ROUTES)
        | st.sampled_from(["/v1/classify", "/v2/models/{m}/infer"])
        | st.just("/v2/models/{m}/infer")
    )
    route = template.format(
        m=MODEL if draw(st.integers(0, 9)) < 8 else draw(_SAFE.filter(bool)),
        v="1" if draw(st.integers(0, 9)) < 8 else draw(_SAFE.filter(bool)),
    )
    natural = "POST" if template.endswith(("infer", "classify")) else "GET"
    method = draw(st.sampled_from([natural] * 6 + ["GET", "POST", "PUT", "DELETE"]))
    kind = draw(st.sampled_from(["bytes", "json", "v2", "v2binary", "image", "multipart"]))
    headers: dict[str, str] = {}
    files = None
    if kind == "bytes":
        body = draw(st.binary(max_size=2048))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "v2":
        body = json.dumps(draw(v2_like())).encode()
    elif kind == "v2binary":
        head = json.dumps(draw(v2_like())).encode()
        tail = draw(st.binary(max_size=256) | st.just(struct.pack("<I", 20) + image_bytes(1)[:20]))
        body = head + tail
        headers["Inference-Header-Content-Length"] = draw(
            st.sampled_from([str(len(head)), str(len(head) + 3), "-1", "0", "x", str(10**12)])
        )
    elif kind == "image":
        img = image_bytes(draw(st.integers(0, 3)))
        body = img[: draw(st.integers(0, len(img)))]
    else:
        body = b""
        files = {draw(_SAFE.filter(bool)): (draw(st.none() | _SAFE), draw(st.binary(max_size=300)))}
    encoding = draw(st.sampled_from([None, None, "gzip", "deflate", "br", "gzip, deflate"]))
    if encoding and files is None:
        headers["Content-Encoding"] = encoding
        if draw(st.booleans()):
            body = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    if files is None:
        headers["Content-Type"] = draw(
            st.sampled_from(
                [
                    "application/octet-stream",
                    "image/png",
                    "application/json",
                    "multipart/form-data",
                    "text/plain",
                    "multipart/form-data; boundary=zz",
                ]
            )
        )
    query = draw(st.sampled_from(["", "?top_k=0", "?top_k=abc", "?top_k=3", "?top_k=99999999999999999999"]))
    return method, route + query, body, headers, files


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(req=requests_())
def test_malformed_requests_never_5xx(http, req):
    method, path, body, headers, files = req
    if files is not None:
        r = http.request(method, path, files=files)
    else:
        r = http.request(method, path, content=body, headers=headers)
    event(f"{method} {r.status_code}")
    assert r.status_code < 500, (method, path, headers, body[:200], r.status_code, r.text)
    if r.status_code >= 400:
        assert "error" in r.json()


def test_server_still_answers_after_fuzzing(http):
    assert http.get("/v2/health/ready").status_code == 200
    r = http.post("/v1/classify", content=image_bytes(3), headers={"content-type": "image/png"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
