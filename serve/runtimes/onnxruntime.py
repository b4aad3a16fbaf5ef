"""ONNX Runtime runtime (CPU, or CUDA where onnxruntime-gpu and a GPU are present).

``device="cuda"`` first asks :func:`serve.runtimes.cuda_probe.onnxruntime_cuda` (GPU build, driver, GPU, CUDA
libraries) and refuses with its reason; a session that still ends up on the CPU is refused too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from serve.errors import RuntimeUnavailable
from serve.runtimes.cuda_probe import onnxruntime_cuda

log = logging.getLogger(__name__)


class OnnxRuntime:
    """An ``onnxruntime.InferenceSession`` behind the Runtime contract.

    Spinning is off (``session.intra_op.allow_spinning = 0``): with it on, idle sessions busy-wait and
    several sessions in one process slow each other 2-3x.
    """

    def __init__(self, path: str | Path, *, max_batch: int, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            probe = onnxruntime_cuda()
            if not probe.ok:
                raise RuntimeUnavailable(f"ONNX Runtime cannot use CUDA here: {probe.reason}")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif device != "cpu":
            raise RuntimeUnavailable(f"unknown device {device!r} for ONNX Runtime; use cpu or cuda")
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        if device == "cuda" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            # ONNX Runtime falls back to the CPU on its own when the CUDA provider fails to start (its error is
            # in the log above); serving "cuda" on the CPU would be a silent fallback, so refuse instead.
            self.session = None  # type: ignore[assignment]
            raise RuntimeUnavailable(
                "ONNX Runtime could not start its CUDA provider and fell back to the CPU (see its error above)"
            )
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.max_batch = max_batch
        self.name = f"onnxruntime-{device}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != np.float32:
            batch = batch.astype(np.float32)
        if not 1 <= batch.shape[0] <= self.max_batch:
            raise ValueError(f"batch of {batch.shape[0]} outside 1..{self.max_batch}")
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch)})
        return out

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
