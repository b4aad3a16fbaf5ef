"""INT8 ONNX models with ``onnxruntime.quantization``: static (calibrated, fixed scales) and dynamic.

Static INT8 is described by a :class:`StaticRecipe`: which parts of the ViT stay float, the ONNX form (QDQ or
QOperator), whether MatMul/Gemm outputs are re-quantized, the calibration, and the scale layout. Parts are
selected by their role in the graph (:func:`node_roles`), then handed to ``quantize_static`` as
``nodes_to_exclude``: no graph surgery here, ONNX Runtime's own tools do the work (``quant_pre_process``
first, as ONNX Runtime recommends).

- ``linear``: the MatMul/Gemm of qkv, attention projection, fc1, fc2 (weights x activations; the FLOPs);
- ``attention``: the two activation x activation MatMuls (q @ k^T, softmax @ v). Quantizing them puts the
  softmax between 8-bit tensors (ONNX Runtime then runs a QLinearSoftmax), where its small probabilities
  vanish: kept float by default;
- ``patch_embed``: the Conv that embeds patches; ``head``: the classifier Gemm.
LayerNormalization, Softmax, GELU and the residual Adds are never quantized (only MatMul/Gemm/Conv are).

The default recipe (:data:`DEFAULT_RECIPE`) is the one benchmarks/runtime_latency.py measured best on trained
ViT-T/S students (accuracy on held-out images and speed, BENCHMARKS.md). Static INT8 answers do not depend on
batch-mates (integer GEMMs with fixed scales); dynamic INT8 computes activation scales per batch
(``DynamicQuantizeLinear``), so its answers do, and the gate refuses it for serving.

Two flavours of static QDQ: ``cpu`` (activations uint8, weights int8 per output channel: the u8s8 path of ONNX
Runtime's x86 VNNI/AVX2 and ARM kernels) and ``tensorrt`` (activations and weights int8 symmetric, the
explicit-quantization form TensorRT parses; always QDQ, outputs quantized as TensorRT expects; biases stay float,
``QuantizeBias: False``, because onnx-tensorrt refuses an INT32 DequantizeLinear as a Conv/Gemm bias).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from export.errors import ConversionError
from export.onnx_export import INPUT_NAME

log = logging.getLogger(__name__)

Flavour = Literal["cpu", "tensorrt"]
Calibration = Literal["minmax", "entropy", "percentile"]
ROLES = ("linear", "attention", "patch_embed", "head")
STATIC_OPS = ("MatMul", "Gemm", "Conv")
DYNAMIC_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class StaticRecipe:
    """How to quantize statically (every field maps onto a ``quantize_static`` argument or extra option)."""

    keep_float: tuple[str, ...] = ("attention",)  # roles left in float (see node_roles)
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    float_outputs: bool = True  # MatMul/Gemm outputs stay float (ORT fuses DQ->MatMul into MatMulIntegerToFloat)
    calibration: Calibration = "minmax"
    per_channel: bool = True  # one weight scale per output channel
    symmetric_activations: bool = False  # activation zero point fixed at the middle of the range
    reduce_range: bool = False  # 7-bit weights (for CPUs without VNNI, where u8s8 products can saturate)

    def replace(self, **changes: Any) -> StaticRecipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_RECIPE = StaticRecipe()
# TensorRT fuses its own attention and reads Q/DQ on every MatMul/Gemm/Conv input and output.
TENSORRT_RECIPE = StaticRecipe(keep_float=(), float_outputs=False)


class ArrayReader:
    """``CalibrationDataReader`` over a float32 array (N, C, H, W), in batches of ``batch``.

    ``len()`` and ``set_range()`` count batches: with ``CalibStridedMinMax`` ONNX Runtime calibrates one window
    of batches at a time and merges the ranges (or histograms), so memory holds one batch's activations, not
    every calibration image's (several GB for a 224 px ViT).
    """

    def __init__(self, images: np.ndarray, batch: int = 16) -> None:
        self.images = images.astype(np.float32, copy=False)
        self.batch = batch
        self._i, self._end = 0, len(self)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._i, self._end = start_index, min(end_index, len(self))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._end:
            return None
        x = self.images[self._i * self.batch : (self._i + 1) * self.batch]
        self._i += 1
        return {INPUT_NAME: np.ascontiguousarray(x)}

    def rewind(self) -> None:
        self._i, self._end = 0, len(self)

    def __iter__(self) -> ArrayReader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def preprocessed_path(dst: Path, work_dir: Path) -> Path:
    """Where :func:`quantize_static_qdq` keeps the pre-processed float graph it quantized (for the QDQ debugger)."""
    return work_dir / f"{dst.stem}.pre.onnx"


def preprocess_for_quantization(src: Path, dst: Path) -> Path:
    """ONNX Runtime's recommended pre-pass (``quant_pre_process``: shape inference + basic graph optimisation)."""
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


def node_roles(model: Any) -> dict[str, str]:
    """{node name: role} for every MatMul/Gemm/Conv of an ONNX ViT graph (roles in :data:`ROLES`).

    ``head``: the weight MatMul/Gemm whose output (directly or through one Add) is a graph output;
    ``attention``: MatMuls with no constant input; ``patch_embed``: Conv; ``linear``: the other MatMul/Gemm.
    """
    consts = {i.name for i in model.graph.initializer}
    consts |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    outputs = {o.name for o in model.graph.output}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def reaches_output(name: str) -> bool:
        if name in outputs:
            return True
        nxt = consumers.get(name, [])
        return len(nxt) == 1 and nxt[0].op_type == "Add" and nxt[0].output[0] in outputs

    roles = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            roles[n.name] = "patch_embed"
        elif n.op_type in ("MatMul", "Gemm"):
            if not any(i in consts for i in n.input[:2]):
                roles[n.name] = "attention"
            elif reaches_output(n.output[0]):
                roles[n.name] = "head"
            else:
                roles[n.name] = "linear"
    unnamed = [n.op_type for n in model.graph.node if n.op_type in STATIC_OPS and not n.name]
    if unnamed:
        raise ConversionError(f"{len(unnamed)} {'/'.join(sorted(set(unnamed)))} node(s) have no name; cannot select")
    return roles


def quantize_static_qdq(
    src: Path,
    dst: Path,
    calibration: np.ndarray,
    *,
    flavour: Flavour = "cpu",
    recipe: StaticRecipe = DEFAULT_RECIPE,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Static INT8 model at ``dst`` following ``recipe``; returns the settings used (for the report)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(calibration) == 0:
        raise ConversionError("static INT8 quantization needs calibration images; none were given")
    bad = [r for r in recipe.keep_float if r not in ROLES]
    if bad:
        raise ConversionError(f"unknown node role(s) {bad} in the INT8 recipe; roles are {', '.join(ROLES)}")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    work_dir = work_dir or dst.parent
    pre = preprocess_for_quantization(src, preprocessed_path(dst, work_dir))
    roles = node_roles(onnx.load(str(pre), load_external_data=False))
    exclude = sorted(name for name, role in roles.items() if role in recipe.keep_float)
    trt = flavour == "tensorrt"
    act = QuantType.QInt8 if trt else QuantType.QUInt8
    options: dict[str, Any] = {
        "ActivationSymmetric": trt or recipe.symmetric_activations,
        "WeightSymmetric": True,
        "CalibStridedMinMax": 1,  # calibrate batch by batch, merging ranges/histograms (see ArrayReader)
    }
    if recipe.float_outputs and not trt:
        options["OpTypesToExcludeOutputQuantization"] = ["MatMul", "Gemm"]
    if trt:  # onnx-tensorrt takes only activation types as a Conv/Gemm bias: an INT32 bias DequantizeLinear fails
        options["QuantizeBias"] = False
    fmt = QuantFormat.QOperator if recipe.quant_format == "qoperator" and not trt else QuantFormat.QDQ
    try:
        quantize_static(
            str(pre),
            str(dst),
            ArrayReader(calibration),
            quant_format=fmt,
            op_types_to_quantize=list(STATIC_OPS),
            nodes_to_exclude=exclude,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=act,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[recipe.calibration],
            extra_options=options,
        )
    except Exception as err:
        raise ConversionError(f"static INT8 quantization failed: {type(err).__name__}: {str(err)[:300]}") from err
    counts: dict[str, int] = {}
    for role in roles.values():
        counts[role] = counts.get(role, 0) + 1
    return {
        "mode": "static",
        "flavour": flavour,
        "recipe": recipe.to_dict(),
        "calibration_images": len(calibration),
        "activations": act.name,
        "weights": "QInt8",
        "int8_nodes": {r: n for r, n in counts.items() if r not in recipe.keep_float},
        "float_nodes": {r: n for r, n in counts.items() if r in recipe.keep_float},
        "pre_process": pre != src,
        "bias": "float" if trt else "int32",
        "quantized_nodes": count_quantized(dst),
    }


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
