"""The accuracy gate: golden metrics, threshold overrides, batch independence, and refusing damaged artifacts.

Every outcome asserted here is certain on any CPU: FP32 artifacts against PyTorch (differences ~1e-6), models
damaged far beyond any rounding, synthetic runtimes, or thresholds set so that rounding cannot decide. How a
given CPU's INT8 kernels round is never asserted.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.errors import ExportError
from export.gate import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    batch_independence,
    compare,
    evaluate_runtime,
    gate_artifact,
    thresholds_with_overrides,
)
from serve.bundle import load_bundle, sha256_file
from serve.errors import BundleError


def test_compare_golden_values():
    ref = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], np.float32)
    got = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 3.0]], np.float32)  # third image flips
    labels = np.array([0, 1, 1, 1])
    m = compare(got, ref, labels)
    assert m["agreement"] == pytest.approx(0.75)
    assert m["reference_accuracy"] == pytest.approx(0.75)  # ref gets image 3 wrong
    assert m["accuracy"] == pytest.approx(1.0)
    assert m["acc_delta"] == pytest.approx(25.0)
    assert m["cos_min"] == pytest.approx(0.0, abs=1e-7)  # orthogonal logits on image 3
    assert m["cos_mean"] == pytest.approx(0.75)
    assert m["max_abs_diff"] == pytest.approx(1.0)


def test_threshold_overrides():
    t = thresholds_with_overrides(["int8.min_agreement=0.9", "fp32.min_cosine=0.99", "int8.max_batch_diff=0.01"])
    assert t["int8"].min_agreement == 0.9 and t["int8"].max_acc_drop == DEFAULT_THRESHOLDS["int8"].max_acc_drop
    assert t["fp32"].min_cosine == 0.99 and t["int8"].max_batch_diff == 0.01
    with pytest.raises(ExportError, match="precision must be one of"):
        thresholds_with_overrides(["int4.min_agreement=0.9"])
    with pytest.raises(ExportError, match="must look like"):
        thresholds_with_overrides(["int8.min_agreement"])


@pytest.fixture(scope="module")
def gate_inputs(tiny_checkpoint):
    from export.source import load_eval_set, load_source, serve_inputs, torch_reference

    source = load_source(tiny_checkpoint)
    ev = load_eval_set(source.card, None, eval_images=100, calib_images=1)
    return serve_inputs(source.card, ev.images), ev.labels, torch_reference(source, ev.images)


def _copy_bundle(exported_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(exported_bundle.bundle, dst)
    return dst


def test_gate_passes_the_good_artifact(exported_bundle, gate_inputs, tmp_path):
    bundle = load_bundle(_copy_bundle(exported_bundle, tmp_path))
    images, labels, ref = gate_inputs
    verdict = gate_artifact(
        bundle,
        bundle.artifact("onnx-fp32"),
        images,
        labels,
        ref,
        thresholds=DEFAULT_THRESHOLDS["fp32"],
        batches=(1, 7, 8),
    )
    assert verdict["passed"], verdict["failures"]
    assert verdict["worst"]["agreement"] == 1.0
    assert set(verdict["per_batch"]) == {"1", "7", "8"}


def test_gate_rejects_perturbed_weights(exported_bundle, gate_inputs, tmp_path):
    root = _copy_bundle(exported_bundle, tmp_path)
    path = root / "model.onnx"
    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    damaged = 0
    for init in model.graph.initializer:  # perturb every weight matrix by 60 % noise: a broken conversion
        w = numpy_helper.to_array(init)
        if w.ndim == 2 and w.size >= 64 * 64:
            init.CopyFrom(
                numpy_helper.from_array(w + 0.6 * w.std() * rng.standard_normal(w.shape).astype(w.dtype), init.name)
            )
            damaged += 1
    assert damaged >= 4
    onnx.save(model, str(path))
    bundle = load_bundle(root, verify=False)
    art = bundle.artifact("onnx-fp32")
    art.sha256 = sha256_file(path)  # hash matches: only the gate can catch this
    images, labels, ref = gate_inputs
    verdict = gate_artifact(bundle, art, images, labels, ref, thresholds=DEFAULT_THRESHOLDS["fp32"], batches=(1, 8))
    assert not verdict["passed"]
    assert any("agreement" in f for f in verdict["failures"])
    assert verdict["worst"]["max_abs_diff"] > 0.1


def test_artifact_changed_after_export_is_refused(exported_bundle, gate_inputs, tmp_path):
    root = _copy_bundle(exported_bundle, tmp_path)
    data = bytearray((root / "model.onnx").read_bytes())
    data[-100] ^= 0xFF  # one flipped byte
    (root / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="changed after export"):
        load_bundle(root)
    bundle = load_bundle(root, verify=False)
    images, labels, ref = gate_inputs
    verdict = gate_artifact(
        bundle, bundle.artifact("onnx-fp32"), images, labels, ref, thresholds=DEFAULT_THRESHOLDS["fp32"], batches=(8,)
    )
    assert not verdict["passed"] and "changed after export" in verdict["failures"][0]


LAX = Thresholds(min_agreement=0.0, max_acc_drop=100.0, min_cosine=-1.0, max_batch_diff=1e-3)
IMPOSSIBLE = Thresholds(min_agreement=1.01, max_acc_drop=-1.0, min_cosine=1.5, max_batch_diff=1e-3)


def test_batch_independence_golden_values():
    alone = np.array([[4.0, 0.0, 1.0], [0.0, 2.0, 1.999], [1.0, 3.0, 0.0]], np.float32)
    same = {1: alone, 2: alone + 1e-6}  # float noise of another kernel: independent
    v = batch_independence(same, 1e-3)
    assert v["passed"] and v["max_rel_diff"] == pytest.approx(2.5e-7, rel=1e-2) and v["flips"] == 0
    tie = alone.copy()
    tie[1] = [0.0, 1.999, 2.0]  # image 2's top-2 were tied within the tolerance alone: not decisive
    v = batch_independence({1: alone, 7: tie}, 1e-3)
    assert v["passed"] and v["flips"] == 1 and v["decisive_flips"] == 0
    scaled = {1: alone, 2: alone * 1.05, 3: alone}  # per-batch activation scales: 5 % moves
    v = batch_independence(scaled, 1e-3)
    assert not v["passed"] and v["max_rel_diff"] == pytest.approx(0.05, rel=1e-5)
    assert v["per_batch"]["3"]["max_rel_diff"] == 0.0
    flip = alone.copy()
    flip[0] = [0.0, 4.0, 1.0]  # a decisive answer changed
    v = batch_independence({1: alone, 8: flip}, 0.5)  # image 1 alone: margin 3 of 4 = 0.75 > 0.5
    assert not v["passed"] and v["decisive_flips"] == 1 and "1 of 3 images change top-1" in v["failures"][0]
    assert not batch_independence({1: alone, 8: alone * np.nan}, 1e-3)["passed"]
    assert batch_independence({8: alone}, 1e-3) == {
        "passed": True,
        "applicable": False,
        "tolerance": 1e-3,
        "per_batch": {},
        "failures": [],
    }


def test_a_runtime_whose_answers_depend_on_batch_mates_fails(exported_bundle, gate_inputs):
    images, labels, ref = gate_inputs
    bundle = load_bundle(exported_bundle.bundle)
    from serve.runtimes import open_runtime

    rt = open_runtime(bundle, bundle.artifact("onnx-fp32"), threads=1)
    try:
        honest = evaluate_runtime(rt.infer, images, labels, ref, batches=(1, 7, 8), thresholds=LAX)

        def mixes(x):  # a runtime that lets batch-mates leak into each answer
            out = rt.infer(x)
            return out - 0.5 * out.mean(0, keepdims=True)

        mixed = evaluate_runtime(mixes, images, labels, ref, batches=(1, 7, 8), thresholds=LAX)
    finally:
        rt.close()
    assert honest["passed"] and honest["checks"] == {"accuracy": True, "batch_independence": True}
    assert honest["batch_independence"]["max_rel_diff"] < 1e-4
    assert not mixed["passed"] and mixed["checks"] == {"accuracy": True, "batch_independence": False}
    assert mixed["batch_independence"]["max_rel_diff"] > 0.01
    assert len(mixed["failures"]) == 1 and "answers depend on batch-mates" in mixed["failures"][0]


def test_batch_dependent_onnx_model_fails_the_gate(exported_bundle, gate_inputs, tmp_path):
    """A real ONNX artifact whose logits subtract half the batch mean: right alone, wrong in company."""
    from onnx import helper

    root = _copy_bundle(exported_bundle, tmp_path)
    model = onnx.load(str(root / "model.onnx"))
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{o}_alone" if o == out else o for o in node.output]
    model.graph.node.extend(
        [
            helper.make_node("ReduceMean", [f"{out}_alone"], ["batch_mean"], axes=[0], keepdims=1),
            helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.float32(0.5))),
            helper.make_node("Mul", ["batch_mean", "half"], ["leak"]),
            helper.make_node("Sub", [f"{out}_alone", "leak"], [out]),
        ]
    )
    onnx.save(model, str(root / "model.onnx"))
    bundle = load_bundle(root, verify=False)
    art = bundle.artifact("onnx-fp32")
    art.sha256 = sha256_file(root / "model.onnx")
    images, labels, ref = gate_inputs
    verdict = gate_artifact(bundle, art, images, labels, ref, thresholds=DEFAULT_THRESHOLDS["fp32"], batches=(1, 8))
    assert not verdict["passed"] and not verdict["checks"]["batch_independence"]
    assert verdict["per_batch"]["1"]["agreement"] == 1.0  # alone, every answer is right
    assert any("answers depend on batch-mates" in f for f in verdict["failures"])


def test_int8_thresholds_decide_and_are_read_back(exported_bundle, gate_inputs, tmp_path):
    """The static INT8 artifact under thresholds no rounding can reach or miss: the verdict follows them."""
    bundle = load_bundle(_copy_bundle(exported_bundle, tmp_path), verify=False)
    art = bundle.artifact("onnx-int8")
    images, labels, ref = gate_inputs
    lax = gate_artifact(bundle, art, images, labels, ref, thresholds=LAX, batches=(1, 8))
    assert lax["checks"]["accuracy"] and lax["thresholds"] == LAX.to_dict()
    impossible = gate_artifact(bundle, art, images, labels, ref, thresholds=IMPOSSIBLE, batches=(1, 8))
    assert not impossible["passed"] and impossible["thresholds"] == IMPOSSIBLE.to_dict()
    assert len(impossible["failures"]) >= 3  # agreement, accuracy drop and cosine each named
    for needle in ("agreement", "accuracy drop", "cosine"):
        assert any(needle in f for f in impossible["failures"]), needle


def test_damaged_int8_model_fails(exported_bundle, gate_inputs, tmp_path):
    """An INT8 model whose input scale is 1000x too large quantizes every image to ~0: certain to fail."""
    root = _copy_bundle(exported_bundle, tmp_path)
    path = root / "model.int8.onnx"
    model = onnx.load(str(path))
    scales = [i for i in model.graph.initializer if i.name == "input_scale"]
    assert len(scales) == 1
    scales[0].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scales[0]) * 1000, "input_scale"))
    onnx.save(model, str(path))
    bundle = load_bundle(root, verify=False)
    art = bundle.artifact("onnx-int8")
    art.sha256 = sha256_file(path)
    images, labels, ref = gate_inputs
    verdict = gate_artifact(bundle, art, images, labels, ref, thresholds=DEFAULT_THRESHOLDS["int8"], batches=(1, 8))
    assert not verdict["passed"] and not verdict["checks"]["accuracy"]
    assert verdict["worst"]["agreement"] < 0.5
