"""``onnx-cuda-fp16``: ONNX Runtime's CUDA provider as an export format, gated and served like the CPU artifacts.

The end-to-end test needs onnxruntime-gpu and an NVIDIA GPU (marker ``onnxruntime_cuda``: it skips elsewhere with
the missing part named); the refusal test runs wherever that provider does not work.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from export.errors import ToolMissing
from serve.runtimes.cuda_probe import onnxruntime_cuda


def _config(tiny_checkpoint, out, formats, **kw):
    from export.config import ExportConfig

    base = {
        "checkpoint": str(tiny_checkpoint),
        "out": str(out),
        "formats": formats,
        "eval_images": 200,
        "calib_images": 32,
        "max_batch": 8,
        "latency_repeats": 3,
        "threads": 1,
    }
    return ExportConfig(**{**base, **kw})


def test_requesting_onnx_cuda_without_it_names_the_missing_part(tiny_checkpoint, tmp_path):
    from export.pipeline import export_bundle

    probe = onnxruntime_cuda()
    if probe.ok:
        pytest.skip("ONNX Runtime's CUDA provider works here")
    with pytest.raises(ToolMissing) as err:
        export_bundle(_config(tiny_checkpoint, tmp_path / "b", ("onnx", "onnx-cuda-fp16")))
    assert str(err.value) == f"onnx-cuda-fp16 requested, but {probe.reason}"
    assert not (tmp_path / "b").exists()


def test_default_formats_skip_onnx_cuda_with_the_reason(exported_bundle):
    probe = onnxruntime_cuda()
    if probe.ok:
        pytest.skip("ONNX Runtime's CUDA provider works here")
    # exported_bundle asks for onnx + onnx-int8 explicitly; the default list is resolved the same way
    from export.pipeline import resolve_formats

    formats, skipped = resolve_formats(())
    assert "onnx-cuda-fp16" not in formats and skipped["onnx-cuda-fp16"] == probe.reason
    assert {"onnx", "onnx-int8"} <= set(formats)
    from export.report import render_markdown

    md = render_markdown({**exported_bundle.report, "skipped_formats": skipped})
    assert f"## Not built on this machine\n\n- onnx-cuda-fp16: {probe.reason}" in md


@pytest.mark.onnxruntime_cuda
def test_onnx_cuda_fp16_is_gated_and_served(tiny_checkpoint, tmp_path):
    from export.pipeline import export_bundle
    from serve.bundle import load_bundle
    from serve.process import ServerProcess

    r = export_bundle(_config(tiny_checkpoint, tmp_path / "b", ("onnx", "onnx-cuda-fp16")))
    assert r.exit_code == 0, r.report["notes"]
    bundle = load_bundle(r.bundle)
    a = bundle.artifact("onnx-cuda-fp16")
    assert a.servable and a.gate["passed"] and a.gate["runtime"] == "onnxruntime-cuda"
    assert set(a.gate["per_batch"]) == {"1", "7", "8"} and a.gate["worst"]["agreement"] >= 0.995
    assert a.device["gpu"] and a.device["execution_provider"] == "CUDAExecutionProvider"
    assert set(a.latency_ms) == {"1", "8"}
    assert (r.bundle / "model.fp16.onnx").is_file() and not list(r.bundle.glob("*.cache"))

    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    req = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    got = {}
    for artifact in ("auto", "onnx-fp32"):
        server = ServerProcess(
            r.bundle, "--artifact", artifact, "--threads", "1", log_path=tmp_path / f"{artifact}.log"
        )
        try:
            server.wait_ready(180)
            info = httpx.get(server.url + "/v1/model", timeout=10).json()
            if artifact == "auto":  # the fastest gate-passing artifact that runs here: the GPU one
                assert info["artifact"] == "onnx-cuda-fp16" and info["device"] == "cuda", info
            res = httpx.post(f"{server.url}/v2/models/{bundle.model_name}/infer", json=req, timeout=30)
            assert res.status_code == 200, res.text
            got[artifact] = np.array(res.json()["outputs"][0]["data"], dtype=np.float32).reshape(3, -1)
        finally:
            assert server.stop() == 0
    assert (got["auto"].argmax(1) == got["onnx-fp32"].argmax(1)).all()
    np.testing.assert_allclose(
        got["auto"], got["onnx-fp32"], atol=5e-2 * max(1.0, float(np.abs(got["onnx-fp32"]).max()))
    )
