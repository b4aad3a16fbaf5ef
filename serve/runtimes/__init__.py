"""Runtimes: open the right one for a bundle artifact.

``open_runtime(bundle, artifact, device=...)`` verifies the artifact's hash, then returns an object
keeping the contract in ``serve.runtimes.base.Runtime``. TensorRT is imported only when asked for.
Runtimes: ``onnxruntime`` (CPU, or CUDA when asked), ``onnxruntime-cuda`` (ONNX Runtime's CUDA execution
provider only: the FP16 ONNX artifact) and ``tensorrt`` (an engine built for one GPU and TensorRT version).
"""

from __future__ import annotations

from serve.bundle import Artifact, Bundle, verify_artifact
from serve.errors import RuntimeUnavailable
from serve.runtimes.base import Runtime
from serve.runtimes.onnxruntime import OnnxRuntime
from serve.runtimes.tensorrt import TensorRTRuntime

__all__ = ["GPU_RUNTIMES", "Runtime", "default_device", "open_runtime"]


GPU_RUNTIMES = ("onnxruntime-cuda", "tensorrt")  # artifacts that run on an NVIDIA GPU only


def default_device(artifact: Artifact) -> str:
    """The device an artifact is meant for: "cuda" for the GPU-only runtimes, else "cpu"."""
    return "cuda" if artifact.runtime in GPU_RUNTIMES else "cpu"


def open_runtime(
    bundle: Bundle, artifact: Artifact, *, device: str | None = None, threads: int | None = None, verify: bool = True
) -> Runtime:
    """Open ``artifact`` on ``device`` (default: :func:`default_device`); RuntimeUnavailable says why it cannot."""
    device = device or default_device(artifact)
    if artifact.runtime in GPU_RUNTIMES and device != "cuda":
        raise RuntimeUnavailable(
            f"artifact {artifact.name} runs on an NVIDIA GPU only ({artifact.runtime}); asked for device {device}"
        )
    if verify:
        verify_artifact(bundle, artifact)
    path = bundle.path_of(artifact)
    if artifact.runtime in ("onnxruntime", "onnxruntime-cuda"):
        return OnnxRuntime(path, max_batch=bundle.max_batch, device=device, threads=threads)
    if artifact.runtime == "tensorrt":
        return TensorRTRuntime(path, max_batch=bundle.max_batch, artifact=artifact)
    raise RuntimeUnavailable(f"artifact {artifact.name}: unknown runtime {artifact.runtime!r}")
