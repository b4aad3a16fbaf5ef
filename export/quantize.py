"""INT8 ONNX models with ``onnxruntime.quantization``: static QDQ (calibrated) and dynamic.

Only the ops that carry the FLOPs are quantized: ``MatMul``, ``Gemm`` (and ``Conv``, the patch embedding,
in static mode). LayerNormalization, Softmax, GELU (Erf) and the residual Adds stay float, because their
outputs have ranges an 8-bit grid cannot hold without hurting accuracy (LayerNorm re-centres per token,
Softmax tails live near 0).

Static QDQ, two flavours:

- ``cpu``: activations uint8 asymmetric, weights int8 symmetric per output channel (the u8s8 path
  ONNX Runtime runs on x86 VNNI / AVX2 kernels);
- ``tensorrt``: activations and weights int8 symmetric, the explicit-quantization form TensorRT parses.

Calibration: MinMax by default (Entropy / Percentile available) over a few hundred preprocessed training
images, fed in batches. Dynamic quantization needs no calibration: weights int8 per channel, activation
scales computed per batch at run time (``DynamicQuantizeLinear`` + ``MatMulInteger``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from export.errors import ConversionError
from export.onnx_export import INPUT_NAME

log = logging.getLogger(__name__)

Flavour = Literal["cpu", "tensorrt"]
Calibration = Literal["minmax", "entropy", "percentile"]
STATIC_OPS = ("MatMul", "Gemm", "Conv")
DYNAMIC_OPS = ("MatMul", "Gemm")


class ArrayReader:
    """``CalibrationDataReader`` over a float32 array (N, C, H, W), in batches of ``batch``."""

    def __init__(self, images: np.ndarray, batch: int = 16) -> None:
        self.images = images.astype(np.float32, copy=False)
        self.batch = batch
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.images):
            return None
        x = self.images[self._i : self._i + self.batch]
        self._i += self.batch
        return {INPUT_NAME: np.ascontiguousarray(x)}

    def rewind(self) -> None:
        self._i = 0


def _preprocess_for_quant(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended pre-pass: symbolic shape inference + basic graph optimisation."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return dst
    except Exception as err:  # noqa: BLE001 - the pre-pass is an optimisation; quantization works without it
        log.warning(
            "quantization pre-processing skipped (%s: %s); quantizing the graph as is",
            type(err).__name__,
            str(err)[:200],
        )
        return src


def quantize_static_qdq(
    src: Path,
    dst: Path,
    calibration: np.ndarray,
    *,
    flavour: Flavour = "cpu",
    method: Calibration = "minmax",
    per_channel: bool = True,
    reduce_range: bool = False,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Static QDQ INT8 model at ``dst``; returns the settings used (for the report)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(calibration) == 0:
        raise ConversionError("static INT8 quantization needs calibration images; none were given")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    work_dir = work_dir or dst.parent
    pre = _preprocess_for_quant(src, work_dir / f"{dst.stem}.pre.onnx")
    act = QuantType.QUInt8 if flavour == "cpu" else QuantType.QInt8
    options = {"ActivationSymmetric": flavour == "tensorrt", "WeightSymmetric": True}
    try:
        quantize_static(
            str(pre),
            str(dst),
            ArrayReader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(STATIC_OPS),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=act,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options=options,
        )
    except Exception as err:
        raise ConversionError(f"static INT8 quantization failed: {type(err).__name__}: {str(err)[:300]}") from err
    settings = {
        "mode": "static-qdq",
        "flavour": flavour,
        "calibration": method,
        "calibration_images": len(calibration),
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "activations": act.name,
        "weights": "QInt8",
        "ops": list(STATIC_OPS),
        "pre_process": pre != src,
    }
    settings["quantized_nodes"] = count_quantized(dst)
    return settings


def quantize_dynamic_int8(
    src: Path, dst: Path, *, per_channel: bool = True, reduce_range: bool = False
) -> dict[str, Any]:
    """Dynamic INT8 (weights int8, activations quantized per batch at run time) at ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=list(DYNAMIC_OPS),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
        )
    except Exception as err:
        raise ConversionError(f"dynamic INT8 quantization failed: {type(err).__name__}: {str(err)[:300]}") from err
    return {
        "mode": "dynamic",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "weights": "QInt8",
        "ops": list(DYNAMIC_OPS),
        "quantized_nodes": count_quantized(dst),
    }


def count_quantized(path: Path) -> dict[str, int]:
    """Op-type histogram of the integer / QDQ nodes in a quantized model (what was quantized)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in (
            "QuantizeLinear",
            "DequantizeLinear",
            "DynamicQuantizeLinear",
            "MatMulInteger",
            "ConvInteger",
            "QLinearMatMul",
            "QLinearConv",
            "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul",
            "QGemm",
        ):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
