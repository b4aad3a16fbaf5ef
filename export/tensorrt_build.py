"""TensorRT engines (FP16, INT8 from the QDQ model) built from the ONNX, with a sidecar describing the device.

Imported only when a TensorRT format is requested; ``tensorrt`` itself is imported inside functions.

Precision, by TensorRT major version:

- 10.x (weak typing): FP16 = ``BuilderFlag.FP16`` with the normalisation and softmax layers pinned to
  FP32 (``layer.precision`` + output type + ``OBEY_PRECISION_CONSTRAINTS``), because a ViT LayerNorm's
  variance overflows FP16 (65504) once activations exceed ~256. INT8 = the QDQ ONNX (explicit
  quantization) with ``INT8`` + ``FP16`` flags and the same FP32 pins.
- 11.x (strong typing, precision flags removed): FP16 = the ONNX converted to FP16 first
  (``onnxruntime.transformers.float16``, LayerNormalization / Softmax / reductions blocked, FP32 I/O), then
  a strongly typed build; INT8 = the QDQ ONNX, strongly typed.

Every build uses an optimisation profile (min 1, opt, max = max_batch) and a persistent timing cache.
The sidecar (``<engine>.json``) records the TensorRT version, GPU name, compute capability, the profile
and the source ONNX's sha256; serve/runtimes/tensorrt.py refuses an engine whose sidecar does not match
the device it runs on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from export.errors import ConversionError, ToolMissing
from export.onnx_export import INPUT_NAME
from serve.bundle import sha256_file

log = logging.getLogger(__name__)

Precision = Literal["fp16", "int8"]
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
FP16_BLOCKED_OPS = ["LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Erf"]
INSTALL_HINT = "pip install tinymim[tensorrt] (TensorRT >= 10 and cuda-python) on a machine with an NVIDIA GPU"


def tensorrt_status() -> tuple[bool, str]:
    """(available, reason): the tensorrt package imports and an NVIDIA GPU is visible to CUDA."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, f"the tensorrt package is not installed; {INSTALL_HINT}"
    try:
        gpu = device_facts()
    except ToolMissing as err:
        return False, str(err)
    return True, f"TensorRT {gpu['tensorrt']} on {gpu['gpu']}"


def device_facts() -> dict[str, Any]:
    """{"tensorrt", "gpu", "compute_capability"} of CUDA device 0 (raises ToolMissing without one)."""
    from serve.runtimes.tensorrt import current_device

    try:
        return current_device()
    except Exception as err:  # noqa: BLE001 - any failure here means "no usable GPU"
        raise ToolMissing(f"no NVIDIA GPU is usable here ({err}); {INSTALL_HINT}") from None


def _major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])


def _weakly_typed(trt: Any) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


def fp16_onnx(src: Path, dst: Path) -> Path:
    """FP16 copy of an ONNX model for strongly typed builds; precision-sensitive ops stay FP32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=FP16_BLOCKED_OPS)
    onnx.save(model, str(dst))
    return dst


def _pin_fp32(trt: Any, network: Any) -> int:
    """Weak typing only: keep normalisation / softmax / reduce layers in FP32. Returns how many were pinned."""
    kinds = {getattr(trt.LayerType, k) for k in FP32_LAYER_TYPES if hasattr(trt.LayerType, k)}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in kinds:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    precision: Precision,
    input_shape: tuple[int, int, int],
    max_batch: int,
    opt_batch: int | None = None,
    timing_cache: Path | None = None,
    workspace_gb: float = 4.0,
) -> dict[str, Any]:
    """Build and write an engine plus its sidecar ``<engine>.json``; returns the sidecar dict.

    ``onnx_path`` is the portable FP32 ONNX for ``fp16`` and the TensorRT-flavoured QDQ ONNX for ``int8``.
    """
    try:
        import tensorrt as trt
    except ImportError:
        raise ToolMissing(f"TensorRT engines need the tensorrt package; {INSTALL_HINT}") from None
    facts = device_facts()
    opt_batch = opt_batch or max(1, min(max_batch, 8))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weak = _weakly_typed(trt)
    source = onnx_path
    if not weak and precision == "fp16":
        source = fp16_onnx(onnx_path, engine_path.with_suffix(".fp16-src.onnx"))
    flags = 0
    if not weak and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT cannot parse {source.name}: {errors[:800]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    pinned = 0
    if weak:
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        pinned = _pin_fp32(trt, network)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    profile = builder.create_optimization_profile()
    c, h, w = input_shape
    profile.set_shape(INPUT_NAME, (1, c, h, w), (opt_batch, c, h, w), (max_batch, c, h, w))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ConversionError(f"TensorRT could not build the {precision} engine from {source.name}; see the log above")
    engine_path.write_bytes(bytes(plan))
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    sidecar = {
        **facts,
        "precision": precision,
        "typing": "weak (builder flags)" if weak else "strong",
        "fp32_pinned_layers": pinned,
        "profile": {"input": INPUT_NAME, "min": [1, c, h, w], "opt": [opt_batch, c, h, w], "max": [max_batch, c, h, w]},
        "source_onnx": onnx_path.name,
        "source_onnx_sha256": sha256_file(onnx_path),
    }
    sidecar_path(engine_path).write_text(json.dumps(sidecar, indent=2))
    log.info(
        "built TensorRT %s engine %s (%s typing, TensorRT %s)",
        precision,
        engine_path.name,
        "weak" if weak else "strong",
        trt.__version__,
    )
    return sidecar


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")
