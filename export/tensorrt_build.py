"""TensorRT engines (FP16, INT8 from the QDQ model) built from the ONNX, with a sidecar describing the device.

Imported only when a TensorRT format is requested; ``tensorrt`` itself is imported inside functions.

Precision, by TensorRT major version:

- 10.x (weak typing): FP16 = ``BuilderFlag.FP16`` with the normalisation and softmax layers pinned to
  FP32 (``layer.precision`` + output type + ``OBEY_PRECISION_CONSTRAINTS``), because a ViT LayerNorm's
  variance overflows FP16 (65504) once activations exceed ~256. INT8 = the QDQ ONNX (explicit
  quantization) with ``INT8`` + ``FP16`` flags and the same FP32 pins.
- 11.x (strong typing, precision flags removed): FP16 = the ONNX converted to FP16 first
  (:mod:`export.fp16`: LayerNormalization / Softmax / reductions stay FP32, FP32 I/O, sorted and checked), then
  a strongly typed build; INT8 = the QDQ ONNX (float biases, see export/quantize.py), strongly typed.

Every build uses an optimisation profile (min 1, opt, max = max_batch) and a timing cache: one per export by
default, or a file the user keeps (``--timing-cache``, like trtexec's ``--timingCacheFile``) that is discarded
with a warning when it was made by another TensorRT or GPU. Nothing but the engine and its sidecar is written
beside the engine.
The sidecar (``<engine>.json``) records the TensorRT version, GPU name, compute capability, the profile
and the source ONNX's sha256; serve/runtimes/tensorrt.py refuses an engine whose sidecar does not match
the device it runs on.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from export.errors import ConversionError, ToolMissing
from export.fp16 import fp16_onnx
from export.onnx_export import INPUT_NAME
from serve.bundle import sha256_file
from serve.runtimes.tensorrt import current_device, tensorrt_probe

log = logging.getLogger(__name__)

Precision = Literal["fp16", "int8"]
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")


def tensorrt_status() -> tuple[bool, str]:
    """(available, reason): TensorRT, cuda-python, the driver and a GPU are all here; else which one is missing."""
    probe = tensorrt_probe()
    if probe.ok:
        return True, f"TensorRT {probe.facts['tensorrt']} on {probe.facts['gpu']}"
    return False, probe.reason


def device_facts() -> dict[str, Any]:
    """{"tensorrt", "gpu", "compute_capability"} of CUDA device 0 (raises ToolMissing without one)."""
    try:
        return current_device()
    except Exception as err:  # noqa: BLE001 - any failure here means "no usable GPU"
        raise ToolMissing(f"no NVIDIA GPU is usable for TensorRT here: {err}") from None


def _major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])


def _weakly_typed(trt: Any) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


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


def attach_timing_cache(config: Any, path: Path | None) -> str:
    """Give the builder config a timing cache: the one stored at ``path`` when it fits, else a new empty one.

    TensorRT refuses a cache made by another TensorRT version or GPU: ``set_timing_cache(cache,
    ignore_mismatch=False)`` returns False and the config is left without a cache (``get_timing_cache()`` then
    returns None). Ignoring the mismatch instead would reuse another device's tactic timings, which NVIDIA warns
    can give wrong or slow engines. So a refused or unreadable cache is discarded with a warning and the build
    goes on with a fresh one. Returns what happened: "loaded", "new" or "discarded (why); new".
    """
    data = path.read_bytes() if path is not None and path.is_file() else b""
    status = "new"
    if data:
        why = "made by another TensorRT version or GPU"
        try:
            cache = config.create_timing_cache(data)
        except Exception as err:  # noqa: BLE001 - unreadable bytes: TensorRT raises or returns None
            cache, why = None, f"unreadable: {type(err).__name__}: {str(err)[:120]}"
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return "loaded"
        log.warning("TensorRT timing cache %s discarded (%s); building with a new one", path, why)
        status = f"discarded ({why}); new"
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("TensorRT did not accept a new timing cache; building without one")
        return status + " (none attached)"
    return status


def save_timing_cache(config: Any, path: Path) -> bool:
    """Write the config's timing cache to ``path`` (atomically) after a build; a missing cache only warns."""
    try:
        cache = config.get_timing_cache()
        if cache is None:
            log.warning("TensorRT returned no timing cache after the build; %s left as it was", path)
            return False
        data = bytes(cache.serialize())
    except Exception as err:  # noqa: BLE001 - the cache only speeds up the next build; never fail the engine for it
        log.warning("TensorRT timing cache not saved (%s: %s)", type(err).__name__, str(err)[:200])
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


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
    ``timing_cache``: a cache file to start from and update (None: a cache for this build only). Intermediate
    files (TensorRT 11's FP16 source ONNX) live in a temporary folder, never beside the engine.
    """
    try:
        import tensorrt as trt
    except ImportError:
        raise ToolMissing(f"TensorRT engines need TensorRT: {tensorrt_probe().reason}") from None
    facts = device_facts()
    opt_batch = opt_batch or max(1, min(max_batch, 8))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weak = _weakly_typed(trt)
    with tempfile.TemporaryDirectory(prefix="tinymim-trt-") as tmp:
        source = onnx_path
        if not weak and precision == "fp16":
            source = fp16_onnx(onnx_path, Path(tmp) / f"{onnx_path.stem}.fp16.onnx")
        flags = 0
        if not weak and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(source)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ConversionError(f"TensorRT cannot parse {onnx_path.name} ({precision}): {errors[:800]}")
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
        cache_status = attach_timing_cache(config, timing_cache)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ConversionError(
                f"TensorRT could not build the {precision} engine from {onnx_path.name}; see the TensorRT log above"
            )
    tmp_engine = engine_path.with_name(engine_path.name + ".tmp")
    tmp_engine.write_bytes(bytes(plan))
    tmp_engine.replace(engine_path)
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)
    sidecar = {
        **facts,
        "precision": precision,
        "typing": "weak (builder flags)" if weak else "strong",
        "fp32_pinned_layers": pinned,
        "profile": {"input": INPUT_NAME, "min": [1, c, h, w], "opt": [opt_batch, c, h, w], "max": [max_batch, c, h, w]},
        "timing_cache": cache_status,
        "source_onnx": onnx_path.name,
        "source_onnx_sha256": sha256_file(onnx_path),
    }
    sidecar_path(engine_path).write_text(json.dumps(sidecar, indent=2))
    log.info(
        "built TensorRT %s engine %s (%s typing, TensorRT %s, timing cache %s)",
        precision,
        engine_path.name,
        "weak" if weak else "strong",
        trt.__version__,
        cache_status,
    )
    return sidecar


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")
