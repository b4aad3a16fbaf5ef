"""The GPU artifacts of a bundle: ONNX Runtime CUDA FP16 and TensorRT FP16/INT8 engines.

Each is built from the portable FP32 graph (standard ONNX ops only, see export/optimize.py):

- ``onnx-cuda-fp16`` (``model.fp16.onnx``, runtime ``onnxruntime-cuda``): the graph converted to FP16 by
  :mod:`export.fp16`; it runs on ONNX Runtime's CUDA execution provider (``onnxruntime-gpu``, installable from
  the public package index), on any NVIDIA GPU, so ``device`` records where it was checked, not a lock.
- ``tensorrt-fp16`` / ``tensorrt-int8`` (``model.fp16.plan`` / ``model.int8.plan`` + sidecar): engines built
  for this GPU and TensorRT version (export/tensorrt_build.py); INT8 from the TensorRT-flavoured QDQ model.

A build that fails (TensorRT cannot parse or build, the FP16 conversion breaks, ...) does not stop the export:
the artifact stays in the bundle marked not servable, with the error as its reason and as its gate verdict,
and its partial files are removed, so the bundle holds only what can be checked (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.fp16 import FP16_BLOCKED_OPS, fp16_onnx
from export.onnx_export import set_metadata
from export.quantize import TENSORRT_RECIPE, quantize_static_qdq
from export.tensorrt_build import build_engine, tensorrt_status
from serve.bundle import Artifact, sha256_file
from serve.runtimes.cuda_probe import onnxruntime_cuda

log = logging.getLogger(__name__)

GPU_FORMATS = ("onnx-cuda-fp16", "tensorrt-fp16", "tensorrt-int8")
FILES = {"onnx-cuda-fp16": "model.fp16.onnx", "tensorrt-fp16": "model.fp16.plan", "tensorrt-int8": "model.int8.plan"}


@dataclass
class GpuBuild:
    """What :func:`build_gpu_artifacts` produced: artifacts (built or failed), quantization settings, tool versions."""

    artifacts: list[Artifact] = field(default_factory=list)
    quantization: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)


def format_status(fmt: str) -> tuple[bool, str]:
    """(buildable here, reason if not) for one GPU format."""
    if fmt == "onnx-cuda-fp16":
        probe = onnxruntime_cuda()
        return probe.ok, probe.reason

    return tensorrt_status()


def failed_artifact(fmt: str, err: BaseException) -> Artifact:
    """The bundle entry of a GPU artifact whose build failed: not servable, the error as reason and gate verdict."""
    precision = fmt.rsplit("-", 1)[1]
    runtime = "onnxruntime-cuda" if fmt == "onnx-cuda-fp16" else "tensorrt"
    why = f"build failed: {type(err).__name__}: {str(err)[:600]}"
    return Artifact(
        name=fmt,
        file=FILES[fmt],
        format="onnx" if fmt.startswith("onnx") else "tensorrt",
        precision=precision,
        runtime=runtime,
        sha256="",
        servable=False,
        reason=why,
        gate={"passed": False, "failures": [why], "checks": {}, "worst": {}, "per_batch": {}},
    )


def _attempt(fmt: str, out: Path, build: Callable[[], Artifact], result: GpuBuild) -> None:
    try:
        result.artifacts.append(build())
    except Exception as err:  # noqa: BLE001 - any build failure is recorded in the bundle, never lost
        log.error("%s: %s: %s (the artifact stays in the bundle, not servable)", fmt, type(err).__name__, err)
        log.debug("%s build traceback", fmt, exc_info=True)
        for leftover in (out / FILES[fmt], out / (FILES[fmt] + ".json"), out / (FILES[fmt] + ".tmp")):
            leftover.unlink(missing_ok=True)
        result.artifacts.append(failed_artifact(fmt, err))


def build_gpu_artifacts(
    formats: tuple[str, ...],
    *,
    portable: Path,
    calibration: np.ndarray | None,
    out: Path,
    work: Path,
    metadata: dict[str, str],
    input_shape: tuple[int, int, int],
    max_batch: int,
    calibration_method: str = "minmax",
    per_channel: bool = True,
    timing_cache: Path | None = None,
) -> GpuBuild:
    """Build every requested GPU format into ``out`` (intermediate files in ``work``)."""
    result = GpuBuild()
    cache = timing_cache or work / "timing.cache"  # shared by this export's engines; never inside the bundle
    if "onnx-cuda-fp16" in formats:
        _attempt("onnx-cuda-fp16", out, lambda: _onnx_cuda_fp16(portable, out, metadata, result), result)
    for fmt in (f for f in formats if f.startswith("tensorrt")):

        def engine(fmt: str = fmt) -> Artifact:
            return _tensorrt(
                fmt,
                portable,
                out,
                work,
                calibration,
                input_shape=input_shape,
                max_batch=max_batch,
                method=calibration_method,
                per_channel=per_channel,
                timing_cache=cache,
                result=result,
            )

        _attempt(fmt, out, engine, result)
    return result


def _onnx_cuda_fp16(portable: Path, out: Path, metadata: dict[str, str], result: GpuBuild) -> Artifact:
    file = FILES["onnx-cuda-fp16"]
    fp16_onnx(portable, out / file)
    set_metadata(out / file, {**metadata, "tinymim.precision": "fp16", "tinymim.execution_provider": "CUDA"})
    facts = onnxruntime_cuda().facts
    gpus = facts.get("gpus") or [{}]
    device = {
        "execution_provider": "CUDAExecutionProvider",
        "onnxruntime": facts.get("onnxruntime"),
        "onnxruntime_cuda": facts.get("onnxruntime_cuda"),
        "gpu": gpus[0].get("name"),
        "compute_capability": gpus[0].get("compute_capability"),
        "fp32_ops": list(FP16_BLOCKED_OPS),
    }
    result.tools["onnxruntime-gpu"] = str(facts.get("onnxruntime"))
    return Artifact(
        name="onnx-cuda-fp16",
        file=file,
        format="onnx",
        precision="fp16",
        runtime="onnxruntime-cuda",
        sha256=sha256_file(out / file),
        device=device,
    )


def _tensorrt(
    fmt: str,
    portable: Path,
    out: Path,
    work: Path,
    calibration: np.ndarray | None,
    *,
    input_shape: tuple[int, int, int],
    max_batch: int,
    method: str,
    per_channel: bool,
    timing_cache: Path,
    result: GpuBuild,
) -> Artifact:
    precision = fmt.split("-")[1]
    src = portable
    if precision == "int8":
        if calibration is None:
            raise ValueError("tensorrt-int8 needs calibration images")
        src = work / "model.int8-trt.onnx"
        result.quantization[fmt] = quantize_static_qdq(
            portable,
            src,
            calibration,
            flavour="tensorrt",
            recipe=TENSORRT_RECIPE.replace(calibration=method, per_channel=per_channel),
            work_dir=work,
        )
    file = FILES[fmt]
    sidecar = build_engine(
        src, out / file, precision=precision, input_shape=input_shape, max_batch=max_batch, timing_cache=timing_cache
    )
    result.tools["tensorrt"] = sidecar["tensorrt"]
    return Artifact(
        name=fmt,
        file=file,
        format="tensorrt",
        precision=precision,
        runtime="tensorrt",
        sha256=sha256_file(out / file),
        device=sidecar,
    )
