"""The Triton repository follows serve/'s runtimes: one platform per runtime, GPU instances for GPU runtimes."""

from __future__ import annotations

from export import triton
from export.triton import PLATFORMS, write_triton_repo
from serve import runtimes
from serve.bundle import Artifact, Bundle, TensorSpec
from serve.select import _FALLBACK_ORDER
from tinymim.card import Preprocess


def test_triton_knows_exactly_the_runtimes_serve_can_open():
    assert set(PLATFORMS) == {runtime for runtime, _ in _FALLBACK_ORDER}
    assert triton.GPU_RUNTIMES is runtimes.GPU_RUNTIMES  # one list, not a copy that can drift


def test_instance_kind_and_file_follow_the_artifact_runtime(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    rows = [  # name, file, format, precision, runtime
        ("onnx-fp32", "model.onnx", "onnx", "fp32", "onnxruntime"),
        ("onnx-int8", "model.int8.onnx", "onnx", "int8", "onnxruntime"),
        ("onnx-cuda-fp16", "model.fp16.onnx", "onnx", "fp16", "onnxruntime-cuda"),
        ("tensorrt-fp16", "model.fp16.plan", "tensorrt", "fp16", "tensorrt"),
        ("tensorrt-int8", "model.int8.plan", "tensorrt", "int8", "tensorrt"),
    ]
    artifacts = []
    for name, file, fmt, precision, runtime in rows:
        (root / file).write_bytes(name.encode())
        artifacts.append(Artifact(name, file, fmt, precision, runtime, "0" * 64))
    artifacts[1].servable = False  # a not-servable artifact gets no Triton model
    bundle = Bundle(
        model_name="m",
        labels=["a", "b", "c"],
        preprocess=Preprocess((1, 28, 28), (0.5,), (0.5,)),
        input=TensorSpec("input", "FP32", [-1, 1, 28, 28]),
        output=TensorSpec("logits", "FP32", [-1, 3]),
        max_batch=8,
        artifacts=artifacts,
        root=root,
    )
    repo = tmp_path / "repo"
    names = write_triton_repo(bundle, repo)
    assert names == ["m_onnx_fp32", "m_onnx_cuda_fp16", "m_tensorrt_fp16", "m_tensorrt_int8"]
    expected = {  # model -> (platform, file Triton expects, instance kind, source artifact file)
        "m_onnx_fp32": ("onnxruntime_onnx", "model.onnx", "KIND_CPU", "model.onnx"),
        "m_onnx_cuda_fp16": ("onnxruntime_onnx", "model.onnx", "KIND_GPU", "model.fp16.onnx"),
        "m_tensorrt_fp16": ("tensorrt_plan", "model.plan", "KIND_GPU", "model.fp16.plan"),
        "m_tensorrt_int8": ("tensorrt_plan", "model.plan", "KIND_GPU", "model.int8.plan"),
    }
    for name, (platform, file, kind, source) in expected.items():
        config = (repo / name / "config.pbtxt").read_text()
        assert f'platform: "{platform}"' in config and f"kind: {kind}" in config
        assert "dims: [ 1, 28, 28 ]" in config and "max_batch_size: 8" in config
        assert (repo / name / "1" / file).read_bytes() == (root / source).read_bytes()
        assert (repo / name / "labels.txt").read_text() == "a\nb\nc\n"
