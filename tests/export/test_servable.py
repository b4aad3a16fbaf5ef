"""Which artifacts ship, from gate verdicts and export-time latencies given here (no runtime, no timing)."""

from __future__ import annotations

from export.servable import decide_servable, failed_requests
from serve.bundle import Artifact

PASS = {"passed": True, "checks": {"accuracy": True, "batch_independence": True}, "failures": []}
BATCH_DEPENDENT = {
    "passed": False,
    "checks": {"accuracy": True, "batch_independence": False},
    "failures": ["answers depend on batch-mates: logits differ by up to 8.3e-03 of the largest logit"],
}
INACCURATE = {
    "passed": False,
    "checks": {"accuracy": False, "batch_independence": True},
    "failures": ["top-1 agreement 0.9400 < 0.98"],
}


def _art(name: str, precision: str, gate: dict, ms8: float) -> Artifact:
    a = Artifact(name, f"{name}.onnx", "onnx", precision, "onnxruntime", "0" * 64)
    a.gate, a.latency_ms = gate, {"1": ms8 / 4, "8": ms8}
    return a


def _bundle(static: dict, dynamic: dict, *, static_ms: float = 5.0, dynamic_ms: float = 4.0) -> list[Artifact]:
    return [
        _art("onnx-fp32", "fp32", PASS, 10.0),
        _art("onnx-int8", "int8", static, static_ms),
        _art("onnx-int8-dynamic", "int8", dynamic, dynamic_ms),
    ]


def test_batch_dependent_int8_never_ships_even_when_fastest():
    arts = _bundle(PASS, BATCH_DEPENDENT)
    notes = decide_servable(arts, 8)
    fp32, static, dynamic = arts
    assert fp32.servable and static.servable and not dynamic.servable
    assert dynamic.reason.startswith("failed the gate's batch-independence check: answers depend on batch-mates")
    assert notes == [f"onnx-int8-dynamic not servable: {dynamic.reason}"]
    assert failed_requests(arts, ("onnx", "onnx-int8")) == []  # the format delivered a passing artifact


def test_int8_slower_than_fp32_is_refused_with_both_latencies():
    arts = _bundle(PASS, BATCH_DEPENDENT, static_ms=12.0)
    decide_servable(arts, 8)
    assert arts[0].servable and not arts[1].servable
    assert arts[1].reason == "passed the gate but is not faster than FP32 here (12.00 ms vs 10.00 ms at batch 8)"


def test_of_two_passing_int8_only_the_faster_ships():
    arts = _bundle(PASS, PASS, static_ms=5.0, dynamic_ms=4.0)
    decide_servable(arts, 8)
    assert [a.servable for a in arts] == [True, False, True]
    assert "onnx-int8-dynamic is faster (4.00 ms vs 5.00 ms at batch 8)" in arts[1].reason


def test_no_int8_passing_fails_the_format_but_keeps_fp32():
    arts = _bundle(INACCURATE, BATCH_DEPENDENT)
    decide_servable(arts, 8)
    assert [a.servable for a in arts] == [True, False, False]
    assert "top-1 agreement 0.9400 < 0.98" in arts[1].reason
    assert failed_requests(arts, ("onnx", "onnx-int8")) == ["onnx-int8", "onnx-int8-dynamic"]
    assert failed_requests(arts, ("onnx",)) == []  # INT8 was not requested: nothing failed
