"""The accuracy gate: golden metrics, threshold overrides, and refusing damaged artifacts."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.errors import ExportError
from export.gate import DEFAULT_THRESHOLDS, compare, gate_artifact, thresholds_with_overrides
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
    t = thresholds_with_overrides(["int8.min_agreement=0.9", "fp32.min_cosine=0.99"])
    assert t["int8"].min_agreement == 0.9 and t["int8"].max_acc_drop == DEFAULT_THRESHOLDS["int8"].max_acc_drop
    assert t["fp32"].min_cosine == 0.99
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
