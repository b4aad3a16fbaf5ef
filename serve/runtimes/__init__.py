"""Runtimes: open the right one for a bundle artifact.

``open_runtime(bundle, artifact, device=...)`` verifies the artifact's hash, then returns an object
keeping the contract in ``serve.runtimes.base.Runtime``. TensorRT is imported only when asked for.
"""

from __future__ import annotations

from serve.bundle import Artifact, Bundle, verify_artifact
from serve.errors import RuntimeUnavailable
from serve.runtimes.base import Runtime

__all__ = ["Runtime", "open_runtime"]


def open_runtime(
    bundle: Bundle, artifact: Artifact, *, device: str = "cpu", threads: int | None = None, verify: bool = True
) -> Runtime:
    if verify:
        verify_artifact(bundle, artifact)
    path = bundle.path_of(artifact)
    if artifact.runtime == "onnxruntime":
        from serve.runtimes.onnxruntime import OnnxRuntime

        return OnnxRuntime(path, max_batch=bundle.max_batch, device=device, threads=threads)
    if artifact.runtime == "tensorrt":
        from serve.runtimes.tensorrt import TensorRTRuntime

        return TensorRTRuntime(path, max_batch=bundle.max_batch, artifact=artifact)
    raise RuntimeUnavailable(f"artifact {artifact.name}: unknown runtime {artifact.runtime!r}")
