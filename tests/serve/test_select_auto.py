"""`--artifact auto` serves only artifacts that passed every gate check, batch independence included."""

from __future__ import annotations

import json
import shutil

from serve.bundle import Artifact, load_bundle, sha256_file
from serve.select import select_runtime

PASSED = {"passed": True, "checks": {"accuracy": True, "batch_independence": True}}
BATCH_DEPENDENT = {
    "passed": False,
    "checks": {"accuracy": True, "batch_independence": False},
    "failures": ["answers depend on batch-mates: ..."],
}
LEGACY = {"passed": True}  # a verdict written before the batch-independence check existed


def _bundle(tiny, root, gates: dict[str, tuple[dict, float]]):
    """The tiny bundle plus one copy of its ONNX model per entry {name: (gate verdict, batch-1 ms)}."""
    shutil.copytree(tiny.path, root)
    d = json.loads((root / "bundle.json").read_text())
    d["artifacts"][0]["latency_ms"] = {"1": 9.0}
    for name, (gate, ms) in gates.items():
        shutil.copy(root / "model.onnx", root / f"{name}.onnx")
        art = Artifact(name, f"{name}.onnx", "onnx", "int8", "onnxruntime", sha256_file(root / f"{name}.onnx"))
        art.gate, art.latency_ms = gate, {"1": ms}
        d["artifacts"].append(art.__dict__)
    (root / "bundle.json").write_text(json.dumps(d))
    return load_bundle(root)


def test_auto_skips_batch_dependent_and_unchecked_artifacts(tiny, tmp_path):
    b = _bundle(
        tiny,
        tmp_path / "b",
        {"int8-dynamic": (BATCH_DEPENDENT, 0.5), "int8-legacy": (LEGACY, 1.0), "int8-static": (PASSED, 2.0)},
    )
    sel = select_runtime(b, "auto", device="cpu", threads=1)
    try:
        assert sel.artifact.name == "int8-static"  # the fastest that passed every check, though slower than two
        assert "int8-dynamic: did not pass the accuracy gate" in sel.reason
        assert "int8-legacy: its gate verdict has no batch-independence check" in sel.reason
    finally:
        sel.runtime.close()


def test_auto_falls_back_to_the_fp32_reference(tiny, tmp_path):
    b = _bundle(tiny, tmp_path / "b", {"int8-dynamic": (BATCH_DEPENDENT, 0.5)})
    sel = select_runtime(b, "auto", device="cpu", threads=1)
    try:
        assert sel.artifact.name == "onnx-fp32" and "int8-dynamic" in sel.reason
    finally:
        sel.runtime.close()
