"""Suite-wide: skip GPU and TensorRT tests cleanly, with the reason, on machines without them."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _gpu() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if torch.cuda.is_available():
        return True, ""
    return False, "no CUDA GPU on this machine"


def pytest_collection_modifyitems(config, items):  # noqa: ANN001 - pytest hook signature
    wanted = [i for i in items if "gpu" in i.keywords or "tensorrt" in i.keywords]
    if not wanted:
        return
    gpu_ok, gpu_why = _gpu()
    trt_ok, trt_why = (False, gpu_why)
    if any("tensorrt" in i.keywords for i in wanted):
        from export.tensorrt_build import tensorrt_status

        trt_ok, trt_why = tensorrt_status()
    for item in wanted:
        if "tensorrt" in item.keywords and not trt_ok:
            item.add_marker(pytest.mark.skip(reason=f"needs TensorRT and an NVIDIA GPU: {trt_why}"))
        elif "gpu" in item.keywords and not gpu_ok:
            item.add_marker(pytest.mark.skip(reason=f"needs an NVIDIA GPU: {gpu_why}"))
