"""Served predictions equal the PyTorch model's on the same image through timm's evaluation transform."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from timm.data import create_transform

from serve.app import create_app
from tests.serve.conftest import make_settings
from tests.serve.helpers import image_bytes

CASES = [((40, 30), "PNG"), ((32, 32), "PNG"), ((64, 96), "JPEG"), ((100, 37), "JPEG")]


@pytest.mark.parametrize("which", ["tiny", "tiny_gray"])
def test_served_logits_equal_pytorch_eval_transform(which, request):
    tb = request.getfixturevalue(which)
    c = tb.preprocess.channels
    tf = create_transform(
        input_size=tb.preprocess.input_size,
        interpolation="bicubic",
        crop_pct=1.0,
        mean=tb.preprocess.mean,
        std=tb.preprocess.std,
    )
    imgs = [image_bytes(10 + i, size=s, fmt=f) for i, (s, f) in enumerate(CASES)]
    with torch.no_grad():
        x = torch.stack([tf(Image.open(io.BytesIO(b)).convert("L" if c == 1 else "RGB")) for b in imgs])
        want = tb.model(x).numpy()
    app = create_app(make_settings(tb.path))
    with TestClient(app) as client:
        name = app.state.service.model_name
        for b, w in zip(imgs, want, strict=True):
            r = client.post("/v1/classify?top_k=10", content=b, headers={"content-type": "application/octet-stream"})
            assert r.status_code == 200, r.text
            pred = r.json()["predictions"][0]
            probs = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
            np.testing.assert_allclose(pred["scores"], probs[pred["indices"]], atol=1e-5)
            assert pred["indices"][0] == int(np.argmax(w))
        # Raw logits through v2 (BYTES, JSON base64), all four images in one request.
        import base64

        req = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [len(imgs)],
                    "datatype": "BYTES",
                    "data": [base64.b64encode(b).decode() for b in imgs],
                }
            ]
        }
        r = client.post(f"/v2/models/{name}/infer", json=req)
        assert r.status_code == 200, r.text
        got = np.array(r.json()["outputs"][0]["data"]).reshape(want.shape)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        assert np.abs(got - want).max() < 1e-4


def test_decode_and_preprocess_are_timed_apart_and_equal_the_one_call(tiny):
    from serve.preprocess import Preprocessor

    pre = Preprocessor.from_card(tiny.preprocess)
    for data in (image_bytes(3, size=(50, 40)), image_bytes(4, size=(32, 32), fmt="JPEG", mode="L")):
        x, decode_s, pre_s = pre.timed(pre.open(data))
        assert decode_s > 0 and pre_s > 0
        np.testing.assert_array_equal(x, pre(data))  # the timed path computes exactly what the service feeds
        assert x.dtype == np.float32 and x.shape == (3, 32, 32) and x.flags.c_contiguous
