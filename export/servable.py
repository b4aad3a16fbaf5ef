"""Which artifacts of a bundle ship: gate verdicts and export-time latency -> ``servable`` and ``reason``.

Rules, in order (each refusal records its reason in the bundle and the report):

1. An artifact that failed any gate check (accuracy, batch independence, or it could not run) is not servable;
   a GPU artifact whose build failed is not servable with the build error as its reason.
2. An ONNX Runtime INT8 artifact that passed ships only if it is faster than ONNX FP32 at the max batch here.
3. Of several such INT8 artifacts, only the fastest at the max batch ships.

``serve.select`` then serves, with ``--artifact auto``, the fastest servable artifact whose gate passed.
"""

from __future__ import annotations

import math

from serve.bundle import Artifact

# Requested format -> the artifacts built for it; a format fails when none of its artifacts passes the gate.
FORMAT_ARTIFACTS = {
    "onnx": ("onnx-fp32",),
    "onnx-int8": ("onnx-int8", "onnx-int8-dynamic"),
    "onnx-cuda-fp16": ("onnx-cuda-fp16",),
    "tensorrt-fp16": ("tensorrt-fp16",),
    "tensorrt-int8": ("tensorrt-int8",),
}


def decide_servable(artifacts: list[Artifact], max_batch: int) -> list[str]:
    """Set ``servable``/``reason`` on every artifact; returns one note per artifact that is not servable."""
    key = str(max_batch)
    for a in artifacts:
        if not a.gate.get("passed") and a.servable:  # a failed GPU build keeps its own reason ("build failed: ...")
            accurate = (a.gate.get("checks") or {}).get("accuracy", False)
            what = "failed the gate's batch-independence check" if accurate else "failed the accuracy gate"
            a.servable, a.reason = False, f"{what}: " + "; ".join(a.gate.get("failures", []))
    fp32 = next((a for a in artifacts if a.name == "onnx-fp32" and a.servable), None)
    int8 = [a for a in artifacts if a.runtime == "onnxruntime" and a.precision == "int8" and a.servable]
    if fp32 is not None and fp32.latency_ms.get(key) is not None:
        for a in int8:
            ms = a.latency_ms.get(key, math.inf)
            if ms >= fp32.latency_ms[key]:
                a.servable = False
                a.reason = (
                    f"passed the gate but is not faster than FP32 here ({ms:.2f} ms vs "
                    f"{fp32.latency_ms[key]:.2f} ms at batch {key})"
                )
    int8 = [a for a in int8 if a.servable]
    if len(int8) > 1:
        best = min(int8, key=lambda a: a.latency_ms.get(key, math.inf))
        for a in int8:
            if a is not best:
                a.servable = False
                a.reason = (
                    f"passed the gate, but {best.name} is faster ({best.latency_ms.get(key, math.inf):.2f} ms vs "
                    f"{a.latency_ms.get(key, math.inf):.2f} ms at batch {key})"
                )
    return [f"{a.name} not servable: {a.reason}" for a in artifacts if not a.servable]


def failed_requests(artifacts: list[Artifact], formats: tuple[str, ...]) -> list[str]:
    """Requested formats with no artifact passing the gate, as their artifacts' names (speed refusals are not
    failures: such an artifact passed and simply was not the fastest)."""
    failed = []
    for fmt in formats:
        members = [a for a in artifacts if a.name in FORMAT_ARTIFACTS.get(fmt, (fmt,))]
        if members and not any(a.gate.get("passed") for a in members):
            failed.extend(a.name for a in members)
    return failed
