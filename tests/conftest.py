"""Suite-wide: skip GPU, ONNX Runtime CUDA and TensorRT tests cleanly, with the missing part named, where absent.

Markers (pyproject.toml): ``gpu`` (an NVIDIA driver and GPU), ``onnxruntime_cuda`` (ONNX Runtime's CUDA provider
working here: onnxruntime-gpu, its CUDA libraries, driver, GPU), ``tensorrt`` (TensorRT, cuda-python, driver,
GPU). The reasons come from the same probes the export and the server use (serve/runtimes/cuda_probe.py,
serve/runtimes/tensorrt.py), so a skip says exactly what a user would be told.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MARKERS = ("gpu", "onnxruntime_cuda", "tensorrt")


def _status(marker: str) -> tuple[bool, str]:
    if marker == "gpu":
        from serve.runtimes.cuda_probe import driver

        probe = driver()
        return probe.ok, f"needs an NVIDIA GPU: {probe.reason}"
    if marker == "onnxruntime_cuda":
        from serve.runtimes.cuda_probe import onnxruntime_cuda

        probe = onnxruntime_cuda()
        return probe.ok, f"needs ONNX Runtime's CUDA provider: {probe.reason}"
    from export.tensorrt_build import tensorrt_status

    ok, why = tensorrt_status()
    return ok, f"needs TensorRT and an NVIDIA GPU: {why}"


def pytest_collection_modifyitems(config, items):  # noqa: ANN001 - pytest hook signature
    # markers only: item.keywords also holds folder names, and a checkout may well live in a folder called "gpu"
    wanted = [(i, [m for m in MARKERS if i.get_closest_marker(m)]) for i in items]
    wanted = [(i, ms) for i, ms in wanted if ms]
    if not wanted:
        return
    status = {m: _status(m) for m in {m for _, ms in wanted for m in ms}}
    for item, marks in wanted:
        for m in sorted(marks, key=lambda m: MARKERS.index(m), reverse=True):  # most specific reason first
            ok, why = status[m]
            if not ok:
                item.add_marker(pytest.mark.skip(reason=why))
                break
