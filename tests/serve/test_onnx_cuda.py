"""The ONNX Runtime CUDA FP16 artifact (``onnx-cuda-fp16``) in serving: the same bundle rules, ``auto`` and refusals.

The artifact file is the real FP16 conversion of the tiny bundle's ONNX (export/fp16.py). Where ONNX Runtime's
CUDA provider works, ``auto`` must pick it (it is recorded as the fastest); everywhere else it must be skipped,
or refused when asked for by name, with the probe's reason naming the missing part.
"""

from __future__ import annotations

import json
import shutil

import pytest

from export.fp16 import fp16_onnx
from serve.bundle import Artifact, load_bundle, sha256_file
from serve.errors import RuntimeUnavailable, ServeError
from serve.runtimes import open_runtime
from serve.runtimes.cuda_probe import onnxruntime_cuda
from serve.select import select_runtime
from tests.serve.helpers import start_server


@pytest.fixture(scope="module")
def cuda_bundle(tiny, tmp_path_factory):
    """The tiny bundle plus an onnx-cuda-fp16 artifact whose (recorded) gate passed and whose latency is lowest."""
    root = tmp_path_factory.mktemp("cuda-bundle") / "b"
    shutil.copytree(tiny.path, root)
    fp16_onnx(root / "model.onnx", root / "model.fp16.onnx")
    d = json.loads((root / "bundle.json").read_text())
    d["artifacts"].append(
        Artifact(
            "onnx-cuda-fp16",
            "model.fp16.onnx",
            "onnx",
            "fp16",
            "onnxruntime-cuda",
            sha256_file(root / "model.fp16.onnx"),
            gate={"passed": True, "checks": {"accuracy": True, "batch_independence": True}},
            latency_ms={"1": 0.01},
            device={"execution_provider": "CUDAExecutionProvider"},
        ).__dict__
    )
    (root / "bundle.json").write_text(json.dumps(d))
    return root


def test_auto_picks_the_cuda_artifact_only_where_cuda_works(cuda_bundle):
    probe = onnxruntime_cuda()
    bundle = load_bundle(cuda_bundle)
    sel = select_runtime(bundle, "auto", threads=1)
    try:
        if probe.ok:
            assert sel.artifact.name == "onnx-cuda-fp16" and sel.device == "cuda"
            assert sel.runtime.name == "onnxruntime-cuda"
        else:
            assert sel.artifact.name == "onnx-fp32" and sel.device == "cpu"
            assert "onnx-cuda-fp16 cannot run here" in sel.reason and probe.reason in sel.reason
    finally:
        sel.runtime.close()


def test_cuda_artifact_refused_by_name_with_the_missing_part(cuda_bundle):
    probe = onnxruntime_cuda()
    if probe.ok:
        pytest.skip("ONNX Runtime's CUDA provider works here")
    bundle = load_bundle(cuda_bundle)
    with pytest.raises(RuntimeUnavailable) as err:
        select_runtime(bundle, "onnx-cuda-fp16", threads=1)
    assert probe.reason in str(err.value)
    assert any(part in probe.reason for part in ("onnxruntime-gpu", "driver", "GPU", "libraries", "cannot be loaded"))


def test_cuda_artifact_never_runs_on_the_cpu(cuda_bundle):
    bundle = load_bundle(cuda_bundle)
    a = bundle.artifact("onnx-cuda-fp16")
    with pytest.raises(RuntimeUnavailable, match="runs on an NVIDIA GPU only"):
        open_runtime(bundle, a, device="cpu")
    with pytest.raises(RuntimeUnavailable, match="--device cpu was asked"):
        select_runtime(bundle, "onnx-cuda-fp16", device="cpu")
    sel = select_runtime(bundle, "auto", device="cpu", threads=1)  # auto on cpu: the FP32 reference, with why
    try:
        assert sel.artifact.name == "onnx-fp32" and "onnx-cuda-fp16" in sel.reason
    finally:
        sel.runtime.close()


def test_server_refuses_the_cuda_artifact_at_start_with_the_reason(cuda_bundle, tmp_path):
    probe = onnxruntime_cuda()
    if probe.ok:
        pytest.skip("ONNX Runtime's CUDA provider works here")
    with pytest.raises(ServeError) as err:
        start_server(cuda_bundle, tmp_path, "--artifact", "onnx-cuda-fp16", timeout=60)
    assert "exited with code" in str(err.value) and probe.reason[:60] in str(err.value)


def test_triton_repo_puts_the_cuda_artifact_on_a_gpu_instance(cuda_bundle, tmp_path):
    from export.triton import write_triton_repo

    bundle = load_bundle(cuda_bundle)
    names = write_triton_repo(bundle, tmp_path / "repo")
    cfg = {n: (tmp_path / "repo" / n / "config.pbtxt").read_text() for n in names}
    (cuda,) = [n for n in names if n.endswith("onnx_cuda_fp16")]
    assert 'platform: "onnxruntime_onnx"' in cfg[cuda] and "KIND_GPU" in cfg[cuda]
    assert (tmp_path / "repo" / cuda / "1" / "model.onnx").is_file()
    assert all("KIND_CPU" in c for n, c in cfg.items() if n != cuda)
