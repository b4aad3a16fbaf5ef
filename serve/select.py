"""Which artifact to serve: by name, or ``auto`` = the fastest gate-passing artifact that runs on this machine.

Eligible for ``auto``: servable artifacts whose gate passed every check, batch independence included (an
image's answer must not depend on the requests it is batched with; a verdict from before that check existed
is not enough); an artifact without a gate verdict is eligible only if it is the FP32 ONNX reference (the
gate compares the others against it). Candidates are ranked by
the batch-1 latency recorded at export (``latency_ms["1"]``; unknown latencies rank last, TensorRT before
ONNX Runtime CUDA FP16 before ONNX Runtime INT8 before FP32), then opened in that order; the first that opens
here wins. Every skip is logged with its reason, so the log says why the served artifact was chosen. GPU-only
artifacts (TensorRT, ``onnx-cuda-fp16``) open on cuda or not at all: on a machine without one they are skipped
with the probe's reason (missing package, libraries, driver or GPU).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from serve.bundle import Artifact, Bundle
from serve.errors import BundleError, RuntimeUnavailable
from serve.runtimes import GPU_RUNTIMES, Runtime, open_runtime
from serve.runtimes.cuda_probe import onnxruntime_cuda

log = logging.getLogger(__name__)

_FALLBACK_ORDER = {
    ("tensorrt", "int8"): 0,
    ("tensorrt", "fp16"): 1,
    ("tensorrt", "fp32"): 2,
    ("onnxruntime-cuda", "fp16"): 3,
    ("onnxruntime", "int8"): 4,
    ("onnxruntime", "fp16"): 5,
    ("onnxruntime", "fp32"): 6,
}


@dataclass(frozen=True)
class Selection:
    artifact: Artifact
    runtime: Runtime
    device: str
    reason: str


def _eligible(a: Artifact) -> str | None:
    """None if eligible for auto, else why not."""
    if not a.servable:
        return f"not servable ({a.reason or 'no reason recorded'})"
    passed = a.gate.get("passed") if a.gate else None
    if passed is not False and a.format == "onnx" and a.precision == "fp32":
        return None  # the reference artifact (FP32 in ONNX Runtime: what the gate compares the others against)
    if passed is False:
        return "did not pass the accuracy gate"
    if passed is None:
        return "has no gate verdict"
    if "batch_independence" not in (a.gate.get("checks") or {}):
        return "its gate verdict has no batch-independence check (exported by an older tinymim; re-export it)"
    return None


def _rank(a: Artifact) -> tuple[float, int]:
    lat = a.latency_ms.get("1") if a.latency_ms else None
    return (float(lat) if lat is not None else float("inf"), _FALLBACK_ORDER.get((a.runtime, a.precision), 9))


def _devices(a: Artifact, device: str) -> list[str]:
    if a.runtime in GPU_RUNTIMES:
        return ["cuda"]  # open_runtime refuses device "cpu" for these with the reason
    if device != "auto":
        return [device]
    return ["cuda", "cpu"] if onnxruntime_cuda().ok else ["cpu"]


def _open(bundle: Bundle, a: Artifact, device: str, threads: int | None) -> tuple[Runtime, str]:
    errors = []
    for dev in _devices(a, device):
        if a.runtime in GPU_RUNTIMES and device == "cpu":
            errors.append(f"it runs on an NVIDIA GPU only ({a.runtime}), and --device cpu was asked")
            continue
        try:
            # OnnxRuntime on cuda refuses (rather than silently running on the CPU) when CUDA does not start
            rt = open_runtime(bundle, a, device=dev, threads=threads)
        except (RuntimeUnavailable, ImportError, OSError, RuntimeError) as err:
            errors.append(f"{dev}: {err}")
            continue
        return rt, dev
    raise RuntimeUnavailable(f"artifact {a.name} cannot run here: " + "; ".join(errors))


def select_runtime(
    bundle: Bundle, name: str = "auto", *, device: str = "auto", threads: int | None = None
) -> Selection:
    """Open the runtime to serve; raise BundleError/RuntimeUnavailable with the reasons when none fits."""
    if name != "auto":
        a = bundle.artifact(name)
        if not a.servable:
            raise BundleError(f"artifact {name} is marked not servable: {a.reason or 'no reason recorded'}")
        rt, dev = _open(bundle, a, device, threads)
        return Selection(a, rt, dev, f"requested by name ({name})")
    skipped = []
    candidates = []
    for a in bundle.artifacts:
        why = _eligible(a)
        if why:
            skipped.append(f"{a.name}: {why}")
        else:
            candidates.append(a)
    for a in sorted(candidates, key=_rank):
        try:
            rt, dev = _open(bundle, a, device, threads)
        except RuntimeUnavailable as err:
            skipped.append(str(err))
            log.info("auto: skipping %s", err)
            continue
        lat = a.latency_ms.get("1") if a.latency_ms else None
        speed = f"{lat} ms at batch 1 at export" if lat is not None else "no recorded latency"
        gate = "gate passed" if a.gate.get("passed") is True else "FP32 ONNX reference, no gate verdict"
        reason = f"fastest eligible artifact that runs here ({gate}; {speed}; device {dev})"
        if skipped:
            reason += "; skipped: " + "; ".join(skipped)
        return Selection(a, rt, dev, reason)
    raise RuntimeUnavailable("no artifact of the bundle can be served here: " + ("; ".join(skipped) or "it has none"))
