"""Serving a TensorRT engine (GPU machines with the tensorrt package only; skipped elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]


def test_auto_serves_tensorrt_and_matches_onnx(tiny, tmp_path):
    pytest.importorskip("tensorrt", reason="needs the tensorrt package")
    build = pytest.importorskip("export.tensorrt_build")
    ok, why = build.tensorrt_status()
    if not ok:
        pytest.skip(f"TensorRT unavailable here: {why}")
    import shutil

    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.bundle import Artifact, sha256_file
    from tests.serve.conftest import make_settings

    root = tmp_path / "trt"
    shutil.copytree(tiny.path, root)
    build.build_engine(
        root / "model.onnx", root / "model.fp16.plan", precision="fp16", input_shape=(3, 32, 32), max_batch=8
    )
    d = json.loads((root / "bundle.json").read_text())
    d["artifacts"].append(
        Artifact(
            "tensorrt-fp16",
            "model.fp16.plan",
            "tensorrt",
            "fp16",
            "tensorrt",
            sha256_file(root / "model.fp16.plan"),
            gate={"passed": True, "checks": {"accuracy": True, "batch_independence": True}},
            latency_ms={"1": 0.01},
        ).__dict__
    )
    (root / "bundle.json").write_text(json.dumps(d))
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    req = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    got = {}
    for artifact in ("auto", "onnx-fp32"):
        app = create_app(make_settings(root, artifact=artifact))
        with TestClient(app) as c:
            assert c.get("/v1/model").json()["artifact"] == ("tensorrt-fp16" if artifact == "auto" else "onnx-fp32")
            r = c.post("/v2/models/tiny-vit/infer", json=req)
            assert r.status_code == 200, r.text
            got[artifact] = np.array(r.json()["outputs"][0]["data"]).reshape(5, 10)
    np.testing.assert_allclose(got["auto"], got["onnx-fp32"], atol=2e-2)
