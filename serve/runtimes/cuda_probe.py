"""What this machine offers for GPU inference, found without torch: NVIDIA driver, GPUs, ONNX Runtime's CUDA provider.

Every probe returns a :class:`Probe` whose ``reason`` names the part that is missing (the package, the CUDA
libraries, the driver, the GPU) and what to do about it, so a refused export format, a skipped test, a
server that cannot open an artifact and the GPU smoke report (benchmarks/gpu_smoke.py) all say the same thing.

- :func:`driver` loads the driver's own library (``libcuda.so.1``, which every CUDA runtime needs and which
  ``docker run --gpus all`` mounts into a container) with ctypes and asks it for its GPUs; the driver version
  comes from NVML (``libnvidia-ml.so.1``) when present. Nothing here needs torch or cuda-python.
- :func:`onnxruntime_cuda` checks, in order: the ``onnxruntime`` module is the GPU build (``onnxruntime-gpu``,
  alone: the CPU build and the GPU build both install the module ``onnxruntime`` and overwrite each other's
  files), the driver and a GPU, and the CUDA/cuDNN libraries of the major version that build was made for
  (PyTorch's CUDA wheel brings them as nvidia-* packages; ``onnxruntime.preload_dlls`` loads them from there).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

GPU_INSTALL = (
    "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'tinymim[gpu]' (or `make gpu-install`); "
    "see README, 'GPU'"
)
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


@dataclass(frozen=True)
class Probe:
    """ok: usable here; reason: what is missing and what to do ("" when ok); facts: what was found."""

    ok: bool
    reason: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


def _cuda_error(lib: Any, code: int) -> str:
    name = ctypes.c_char_p()
    with contextlib.suppress(Exception):
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return f"{code} {name.value.decode()}"
    return str(code)


def _driver_version() -> str | None:
    """The NVIDIA driver's version string (e.g. "580.65.06") from NVML, or None without NVML."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    buf = ctypes.create_string_buffer(96)
    try:
        if nvml.nvmlInit_v2() != 0:
            return None
        ok = nvml.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(len(buf))) == 0
        nvml.nvmlShutdown()
    except AttributeError:
        return None
    return buf.value.decode() if ok else None


@functools.lru_cache(maxsize=1)
def driver() -> Probe:
    """The NVIDIA driver and its GPUs: facts {"driver", "driver_cuda", "gpus": [{"name", "compute_capability",
    "memory_gib"}]}."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return Probe(
            False,
            "no NVIDIA driver here (libcuda.so.1 is not on this machine): install the NVIDIA driver, or run the "
            "container with --gpus all (NVIDIA Container Toolkit)",
        )
    facts: dict[str, Any] = {"driver": _driver_version()}
    rc = lib.cuInit(0)
    if rc != 0:
        return Probe(
            False,
            f"the NVIDIA driver is installed but cannot start CUDA (cuInit: CUDA error {_cuda_error(lib, rc)}); "
            "check `nvidia-smi`",
            facts,
        )
    version = ctypes.c_int()
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0:
        facts["driver_cuda"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
    count = ctypes.c_int()
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value < 1:
        why = f"CUDA error {_cuda_error(lib, rc)}" if rc else "it reports 0 devices"
        reason = f"the NVIDIA driver sees no GPU ({why}); check CUDA_VISIBLE_DEVICES and `nvidia-smi`"
        return Probe(False, reason, facts)
    gpus = []
    for i in range(count.value):
        dev, name = ctypes.c_int(), ctypes.create_string_buffer(256)
        major, minor, mem = ctypes.c_int(), ctypes.c_int(), ctypes.c_size_t()
        lib.cuDeviceGet(ctypes.byref(dev), i)
        lib.cuDeviceGetName(name, len(name), dev)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        lib.cuDeviceTotalMem_v2(ctypes.byref(mem), dev)
        gpus.append(
            {
                "name": name.value.decode(errors="replace"),
                "compute_capability": f"{major.value}.{minor.value}",
                "memory_gib": round(mem.value / 2**30, 1),
            }
        )
    facts["gpus"] = gpus
    return Probe(True, "", facts)


def onnxruntime_distributions() -> dict[str, str]:
    """Installed distributions that provide the ``onnxruntime`` module: {name: version}."""
    found = {}
    for name in ("onnxruntime", "onnxruntime-gpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def cuda_libraries(cuda_major: int) -> list[str]:
    """The shared libraries ONNX Runtime's CUDA provider loads for a build made with CUDA ``cuda_major``."""
    return [
        f"libcudart.so.{cuda_major}",
        f"libcublasLt.so.{cuda_major}",
        f"libcublas.so.{cuda_major}",
        "libcurand.so.10",
        "libcudnn.so.9",
    ]


_preloaded: list[str] = []


def preload_cuda_libraries() -> str:
    """Load the CUDA/cuDNN libraries from the nvidia-* wheels beside onnxruntime-gpu (what PyTorch's CUDA wheel
    installs), once per process; returns what ``onnxruntime.preload_dlls`` printed.

    Skipped when torch is already imported: torch has loaded its own copies, which ONNX Runtime then uses
    (ONNX Runtime's documentation: preloading is not needed after ``import torch`` of the same CUDA major).
    """
    if _preloaded or "torch" in sys.modules:
        return _preloaded[0] if _preloaded else ""
    import onnxruntime as ort

    out = io.StringIO()
    if hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(out):
            try:
                ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
            except Exception as err:  # noqa: BLE001 - a failed preload is reported by the library check below
                print(f"preload_dlls failed: {err}")
    _preloaded.append(out.getvalue().strip())
    if _preloaded[0]:
        log.debug("onnxruntime.preload_dlls: %s", _preloaded[0])
    return _preloaded[0]


def _missing_libraries(cuda_major: int) -> list[str]:
    missing = []
    for name in cuda_libraries(cuda_major):
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


@functools.lru_cache(maxsize=1)
def onnxruntime_cuda() -> Probe:
    """Can ONNX Runtime run on CUDA here? facts: onnxruntime version, its CUDA build, providers, the driver's facts."""
    dists = onnxruntime_distributions()
    if len(dists) > 1:
        both = " and ".join(f"{n} {v}" for n, v in dists.items())
        return Probe(
            False,
            f"both {both} are installed: they share the module `onnxruntime` and overwrite each other's files; "
            f"keep one: {GPU_INSTALL}",
            {"distributions": dists},
        )
    try:
        import onnxruntime as ort
    except ImportError as err:
        return Probe(False, f"onnxruntime does not import ({err}); {GPU_INSTALL}", {"distributions": dists})
    providers = list(ort.get_available_providers())
    facts: dict[str, Any] = {"onnxruntime": ort.__version__, "distributions": dists, "providers": providers}
    if "CUDAExecutionProvider" not in providers:
        return Probe(
            False,
            f"the onnxruntime installed here is the CPU build ({', '.join(f'{n} {v}' for n, v in dists.items())}; "
            f"providers: {', '.join(providers)}); the CUDA provider comes with onnxruntime-gpu: {GPU_INSTALL}",
            facts,
        )
    build_cuda = getattr(getattr(ort, "capi", None), "build_and_package_info", None)
    cuda_version = str(getattr(build_cuda, "cuda_version", "") or "")
    facts["onnxruntime_cuda"] = cuda_version
    gpu = driver()
    facts.update(gpu.facts)
    if not gpu.ok:
        return Probe(False, f"onnxruntime-gpu {ort.__version__} is installed, but {gpu.reason}", facts)
    major = int(cuda_version.split(".")[0]) if cuda_version[:1].isdigit() else 12
    printed = preload_cuda_libraries()
    missing = _missing_libraries(major)
    if missing:
        detail = f" (onnxruntime.preload_dlls said: {printed[:300]})" if printed else ""
        return Probe(
            False,
            f"onnxruntime-gpu {ort.__version__} was built for CUDA {cuda_version or major} and cuDNN 9, but "
            f"{', '.join(missing)} cannot be loaded{detail}: install PyTorch's CUDA {major} wheel in the same "
            f"environment, or pip install 'onnxruntime-gpu[cuda,cudnn]'",
            facts,
        )
    return Probe(True, "", facts)
