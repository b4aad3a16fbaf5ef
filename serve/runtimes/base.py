"""The one contract every runtime keeps (ONNX Runtime CPU/CUDA, TensorRT).

``infer`` takes a float32 batch (B, C, H, W) with 1 <= B <= max_batch and returns float32 logits (B, K).
Runtimes are not thread-safe: serve/ gives each to exactly one worker; export/ calls it directly.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runtime(Protocol):
    name: str  # e.g. "onnxruntime-cpu"
    max_batch: int

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
