"""TensorRT runtime: a serialized engine behind the Runtime contract (float32 in, float32 logits out).

``tensorrt`` and ``cuda-python`` are imported when a runtime is opened, never at module import. An
engine only runs on the TensorRT version and GPU model it was built for, so the sidecar written by
export/ (``<engine>.json``: TensorRT version, GPU name, compute capability, profile) is compared with
this device first; any mismatch raises RuntimeUnavailable saying to rebuild on this device.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from serve.errors import RuntimeUnavailable
from serve.runtimes.cuda_probe import Probe, driver

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "TensorRT comes from NVIDIA's package index, not PyPI (PyPI's tensorrt packages are stubs that download from "
    "NVIDIA's index at install time): pip install --extra-index-url https://pypi.nvidia.com 'tinymim[tensorrt]' on "
    "a machine with an NVIDIA GPU; see README, 'TensorRT'"
)
REBUILD_HINT = "rebuild on this device: tinymim export CHECKPOINT --out BUNDLE --formats tensorrt-fp16,tensorrt-int8"


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python
        except ImportError:
            raise RuntimeUnavailable(f"cuda-python is not installed; {INSTALL_HINT}") from None
    return cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values); raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeUnavailable(f"CUDA call {what} failed with {err}")
    return values[0] if len(values) == 1 else values


def current_device(index: int = 0) -> dict[str, Any]:
    """{"tensorrt": version, "gpu": name, "compute_capability": "M.m"} of CUDA device ``index``."""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailable(f"the tensorrt package is not installed; {INSTALL_HINT}") from None
    cudart = _cudart()
    count = _check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if count < 1:
        raise RuntimeUnavailable("no NVIDIA GPU is visible to CUDA")
    props = _check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return {"tensorrt": trt.__version__, "gpu": name, "compute_capability": f"{props.major}.{props.minor}"}


@functools.lru_cache(maxsize=1)
def tensorrt_probe() -> Probe:
    """Can TensorRT build and run engines here? The reason names the missing part: the package, its libraries,
    cuda-python, the driver or the GPU. facts: {"tensorrt", "gpu", "compute_capability", ...} when found."""
    try:
        import tensorrt as trt
    except ModuleNotFoundError as err:
        if err.name == "tensorrt":
            return Probe(False, f"the tensorrt package is not installed; {INSTALL_HINT}")
        return Probe(False, f"the tensorrt package is installed but does not import ({err}); {INSTALL_HINT}")
    except Exception as err:  # noqa: BLE001 - OSError/ImportError from loading libnvinfer and friends
        return Probe(
            False,
            f"the tensorrt package is installed but its libraries do not load ({type(err).__name__}: "
            f"{str(err)[:200]}); reinstall it with its libraries: {INSTALL_HINT}",
        )
    facts: dict[str, Any] = {"tensorrt": trt.__version__}
    try:
        _cudart()
    except RuntimeUnavailable:
        reason = f"TensorRT {trt.__version__} is installed but cuda-python is not: pip install 'tinymim[tensorrt]'"
        return Probe(False, reason, facts)
    gpu = driver()
    facts.update(gpu.facts)
    if not gpu.ok:
        return Probe(False, f"TensorRT {trt.__version__} is installed, but {gpu.reason}", facts)
    try:
        facts.update(current_device())
    except Exception as err:  # noqa: BLE001 - cuda-python errors: version skew with the driver, no device
        return Probe(False, f"TensorRT {trt.__version__} is installed, but CUDA device 0 cannot be used: {err}", facts)
    return Probe(True, "", facts)


def read_sidecar(engine: Path, artifact: Any = None) -> dict[str, Any]:
    path = engine.with_name(engine.name + ".json")
    if path.is_file():
        return json.loads(path.read_text())
    if artifact is not None and getattr(artifact, "device", None):
        return dict(artifact.device)
    raise RuntimeUnavailable(f"engine {engine.name} has no sidecar {path.name}; {REBUILD_HINT}")


def check_device(sidecar: dict[str, Any], here: dict[str, Any]) -> None:
    """Raise RuntimeUnavailable when the engine was built with another TensorRT or on another GPU."""
    problems = [
        f"{key} {sidecar.get(key)!r} at build time, {here[key]!r} here"
        for key in ("tensorrt", "gpu", "compute_capability")
        if str(sidecar.get(key)) != str(here[key])
    ]
    if not problems:
        return
    built, now = str(sidecar.get("tensorrt", "?")).split(".")[0], str(here["tensorrt"]).split(".")[0]
    if built != now:
        problems.insert(
            0,
            f"the engine was built with TensorRT {built}.x and this machine has TensorRT {now}.x: an engine loads only "
            "in the TensorRT version that built it, so build and serve with the same one (the `tensorrt` extra "
            "and the Dockerfile's gpu stage install the same major)",
        )
    raise RuntimeUnavailable("TensorRT engine does not fit this device (" + "; ".join(problems) + f"); {REBUILD_HINT}")


class TensorRTRuntime:
    """One engine, one execution context, one CUDA stream; device buffers sized for ``max_batch``."""

    def __init__(self, path: str | Path, *, max_batch: int, artifact: Any = None) -> None:
        path = Path(path)
        here = current_device()
        sidecar = read_sidecar(path, artifact)
        check_device(sidecar, here)
        import tensorrt as trt

        self._cudart = _cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeUnavailable(f"TensorRT could not deserialize {path.name}; {REBUILD_HINT}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeUnavailable(f"{path.name}: expected one input and one output tensor, got {inputs} / {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        profile_max = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.max_batch = min(max_batch, profile_max)
        self.input_shape = tuple(int(d) for d in self.engine.get_tensor_shape(self.input_name))[1:]
        self.num_classes = int(self.engine.get_tensor_shape(self.output_name)[-1])
        in_bytes = self.max_batch * int(np.prod(self.input_shape)) * 4
        out_bytes = self.max_batch * self.num_classes * 4
        self._d_in = _check(self._cudart.cudaMalloc(in_bytes), "cudaMalloc")
        self._d_out = _check(self._cudart.cudaMalloc(out_bytes), "cudaMalloc")
        self._stream = _check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.context.set_tensor_address(self.input_name, int(self._d_in))
        self.context.set_tensor_address(self.output_name, int(self._d_out))
        self.name = f"tensorrt-{sidecar.get('precision', 'engine')}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        b = batch.shape[0]
        if not 1 <= b <= self.max_batch:
            raise ValueError(f"batch of {b} outside 1..{self.max_batch}")
        if tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"input shape {batch.shape[1:]} differs from the engine's {self.input_shape}")
        out = np.empty((b, self.num_classes), dtype=np.float32)
        cu = self._cudart
        kind_h2d = cu.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cu.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.context.set_input_shape(self.input_name, tuple(batch.shape))
        _check(cu.cudaMemcpyAsync(self._d_in, batch.ctypes.data, batch.nbytes, kind_h2d, self._stream), "memcpy H2D")
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        _check(cu.cudaMemcpyAsync(out.ctypes.data, self._d_out, out.nbytes, kind_d2h, self._stream), "memcpy D2H")
        _check(cu.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out

    def close(self) -> None:
        cu = getattr(self, "_cudart", None)
        if cu is None:
            return
        for ptr in (getattr(self, "_d_in", None), getattr(self, "_d_out", None)):
            if ptr is not None:
                cu.cudaFree(ptr)
        if getattr(self, "_stream", None) is not None:
            cu.cudaStreamDestroy(self._stream)
        self._d_in = self._d_out = self._stream = None
        self.context = self.engine = None
        self._cudart = None
