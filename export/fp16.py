"""FP16 ONNX: one conversion for the GPU artifacts that run a float16 graph.

Used by the ONNX Runtime CUDA artifact (``onnx-cuda-fp16``) and by TensorRT 11's strongly typed FP16 build
(export/tensorrt_build.py). ``onnxruntime.transformers.float16.convert_float_to_float16`` converts weights
and ops to float16 with FP32 inputs/outputs (``keep_io_types``), except the ops in :data:`FP16_BLOCKED_OPS`:
a ViT LayerNorm's variance and a softmax's sum overflow or lose their small terms in float16 once activations
reach a few hundred, so normalisation, softmax, reductions and the GELU's Erf stay FP32 behind Cast nodes.

The converter appends the Cast nodes it inserts at the end of the node list, which leaves the graph out of
topological order (``onnx.checker`` rejects it, and so does any consumer that reads nodes in order);
ONNX Runtime's own ``OnnxModel.topological_sort`` restores the order. Before ONNX Runtime 1.32 it also repeats
an identical Cast for each consumer of one tensor (:func:`_drop_duplicate_nodes`). The result must pass the
checker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ConversionError

if TYPE_CHECKING:
    import onnx

FP16_BLOCKED_OPS = ["LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Erf"]


def fp16_onnx(src: Path, dst: Path) -> Path:
    """Write an FP16 copy of ``src`` (FP32 I/O, :data:`FP16_BLOCKED_OPS` in FP32) to ``dst``, sorted and checked."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    try:
        converted = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=FP16_BLOCKED_OPS)
        _drop_duplicate_nodes(converted.graph)
        model = OnnxModel(converted)
        model.topological_sort(is_deterministic=True)
    except Exception as err:  # the converter raises plain ValueError/KeyError/RuntimeError from graph walks
        raise ConversionError(f"FP16 conversion of {src.name} failed: {type(err).__name__}: {str(err)[:300]}") from err
    try:
        onnx.checker.check_model(model.model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ConversionError(f"the FP16 conversion of {src.name} fails onnx.checker: {str(err)[:400]}") from None
    onnx.save(model.model, str(dst))
    return dst


def _drop_duplicate_nodes(graph: onnx.GraphProto) -> int:
    """Remove exact repeats of a node (same op, inputs, outputs, attributes) and of a value_info; returns how many.

    ONNX Runtime before 1.32 (onnxruntime-gpu 1.31 is the newest GPU build on PyPI at the time of writing) inserts
    one identical ``<tensor>_cast_to_fp32`` Cast per consumer when an FP16 tensor feeds several FP32-blocked
    nodes, so the same output name is produced twice and the graph is not in SSA form; 1.32 shares one Cast.
    Keeping the first of identical nodes is exactly what 1.32 produces.
    """
    seen_nodes: set[bytes] = set()
    keep = []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen_nodes:
            seen_nodes.add(key)
            keep.append(node)
    dropped = len(graph.node) - len(keep)
    if dropped:
        del graph.node[:]
        graph.node.extend(keep)
    names: set[str] = set()
    infos = []
    for info in graph.value_info:
        if info.name not in names:
            names.add(info.name)
            infos.append(info)
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)
    return dropped
