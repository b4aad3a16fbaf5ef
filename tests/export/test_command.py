"""`tinymim export` end to end on a tiny trained checkpoint, and every kind of bad input."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from export.config import ExportConfig
from export.errors import EvalDataError, SourceError, ToolMissing
from export.pipeline import export_bundle
from export.tensorrt_build import tensorrt_status
from export.triton import triton_model_name
from serve.bundle import load_bundle, sha256_file
from serve.runtimes import open_runtime
from tinymim.card import ModelCard
from tinymim.errors import ConfigError
from tinymim_cli.main import main

NO_TRT = not tensorrt_status()[0]


def test_bundle_contents(exported_bundle, tiny_checkpoint):
    r = exported_bundle
    bundle = load_bundle(r.bundle)  # verifies every servable artifact's sha256
    card = ModelCard.load(tiny_checkpoint)
    assert bundle.labels == list(card.labels) and bundle.preprocess == card.preprocess
    assert bundle.input.name == "input" and bundle.input.shape == [-1, 1, 32, 32]
    assert bundle.output.name == "logits" and bundle.output.shape == [-1, 10]
    assert bundle.source["sha256"] == sha256_file(tiny_checkpoint / "model.safetensors")
    assert {"torch", "onnx", "onnxruntime", "tinymim"} <= set(bundle.tools)
    names = [a.name for a in bundle.artifacts]
    assert names == ["onnx-fp32", "onnx-int8", "onnx-int8-dynamic"]
    fp32 = bundle.artifact("onnx-fp32")  # FP32 vs PyTorch differs by ~1e-6 on any CPU: it always passes
    assert fp32.servable and fp32.gate["passed"] and set(fp32.gate["per_batch"]) == {"1", "7", "8"}
    assert fp32.gate["batch_independence"]["max_rel_diff"] < 1e-4
    assert set(fp32.latency_ms) == {"1", "8"}
    meta = {p.key: p.value for p in onnx.load(str(r.bundle / "model.onnx")).metadata_props}
    assert json.loads(meta["tinymim.labels"]) == list(card.labels)
    assert json.loads(meta["tinymim.preprocess"]) == card.preprocess.to_dict()
    for f in ("report.json", "report.md", "report.png"):
        assert (r.bundle / f).stat().st_size > 100
    assert "onnx-fp32" in (r.bundle / "report.md").read_text()


def test_int8_verdicts_are_consistent_whatever_this_cpu_rounds(exported_bundle):
    """Whether INT8 passes depends on the CPU's integer kernels; what follows from each verdict does not."""
    r = exported_bundle
    bundle = load_bundle(r.bundle)
    int8 = [a for a in bundle.artifacts if a.precision == "int8"]
    for a in int8:
        g, t = a.gate, a.gate["thresholds"]
        assert set(g["per_batch"]) == {"1", "7", "8"} and g["images"] == 200
        assert g["passed"] == (g["checks"]["accuracy"] and g["checks"]["batch_independence"])
        w, bi = g["worst"], g["batch_independence"]
        assert g["checks"]["accuracy"] == (
            w["agreement"] >= t["min_agreement"]
            and w["acc_delta"] >= -t["max_acc_drop"]
            and w["cos_min"] >= t["min_cosine"]
        )
        assert bi["passed"] == (bi["max_rel_diff"] <= t["max_batch_diff"] and bi["decisive_flips"] == 0)
        assert g["passed"] or (g["failures"] and not a.servable and all(f in a.reason for f in g["failures"]))
        assert (r.bundle / a.file).is_file()  # a refused artifact stays in the bundle, marked
    servable = [a for a in int8 if a.servable]
    assert len(servable) <= 1  # at most the faster INT8 ships
    for a in servable:
        assert a.gate["passed"] and a.latency_ms["8"] < bundle.artifact("onnx-fp32").latency_ms["8"]
    for a in int8:
        assert a.servable or a.reason  # a refused artifact always says why
    any_passed = any(a.gate["passed"] for a in int8)
    assert (r.exit_code, r.failed) == ((0, []) if any_passed else (3, ["onnx-int8", "onnx-int8-dynamic"]))
    md = (r.bundle / "report.md").read_text()
    for a in int8:
        assert a.name in md and (a.servable or a.reason.split(":")[0] in md)


def test_served_runtime_answers_like_the_gate(exported_bundle):
    from export.source import load_eval_set, serve_inputs

    bundle = load_bundle(exported_bundle.bundle)
    card = ModelCard.from_dict(bundle.source["card"])
    ev = load_eval_set(card, None, eval_images=40, calib_images=1)
    rt = open_runtime(bundle, bundle.artifact("onnx-fp32"))
    acc = float((rt.infer(serve_inputs(card, ev.images)[:8]).argmax(1) == ev.labels[:8]).mean())
    rt.close()
    assert 0.0 <= acc <= 1.0


def test_triton_repository(exported_bundle):
    repo = exported_bundle.bundle.parent / "triton"
    models = sorted(p.name for p in repo.iterdir())
    bundle = load_bundle(exported_bundle.bundle)
    assert len(models) == sum(a.servable for a in bundle.artifacts)
    name = triton_model_name(bundle.model_name, "onnx-fp32")
    assert name == "tiny_fmnist_onnx_fp32"
    cfg = (repo / name / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in cfg and "max_batch_size: 8" in cfg and "dynamic_batching" in cfg
    assert "dims: [ 1, 32, 32 ]" in cfg and "dims: [ 10 ]" in cfg
    assert (repo / name / "1" / "model.onnx").read_bytes() == (exported_bundle.bundle / "model.onnx").read_bytes()


def test_failing_gate_keeps_artifact_unservable_and_exits_nonzero(tiny_checkpoint, tmp_path):
    cfg = ExportConfig(
        checkpoint=str(tiny_checkpoint),
        out=str(tmp_path / "b"),
        formats=("onnx",),
        eval_images=50,
        max_batch=4,
        optimise=False,
        latency_repeats=1,
        gate=("fp32.min_cosine=1.5",),
    )
    r = export_bundle(cfg)
    assert r.exit_code == 3 and r.failed == ["onnx-fp32"]
    bundle = load_bundle(r.bundle)
    a = bundle.artifact("onnx-fp32")
    assert not a.servable and "failed the accuracy gate" in a.reason and "cosine" in a.reason


@pytest.mark.skipif(not NO_TRT, reason="this machine has TensorRT and a GPU")
def test_tensorrt_requested_without_gpu_fails_at_once(tmp_path):
    cfg = ExportConfig(checkpoint=str(tmp_path / "does-not-exist"), out=str(tmp_path / "b"), formats=("tensorrt-fp16",))
    with pytest.raises(ToolMissing, match=r"^tensorrt-fp16 requested, but ") as err:
        export_bundle(cfg)  # raised before the (missing) checkpoint is even looked at
    assert str(err.value).endswith(tensorrt_status()[1])
    assert not (tmp_path / "b").exists()
    assert main(["export", str(tmp_path / "x"), "--out", str(tmp_path / "b"), "--formats", "tensorrt-int8"]) == 2


def test_cli_exports_onnx(tiny_checkpoint, tmp_path, capsys):
    code = main(
        [
            "export",
            str(tiny_checkpoint),
            "--out",
            str(tmp_path / "cli"),
            "--formats",
            "onnx",
            "--eval-images",
            "50",
            "--max-batch",
            "4",
            "--no-optimise",
            "--latency-repeats",
            "1",
        ]
    )
    assert code == 0
    assert "onnx-fp32" in capsys.readouterr().out
    assert load_bundle(tmp_path / "cli").artifact("onnx-fp32").servable


def test_bad_config_values():
    with pytest.raises(ConfigError, match="unknown format"):
        ExportConfig(checkpoint="x", out="y", formats=("onnx-fp8",)).validate()
    with pytest.raises(ConfigError, match="max_batch"):
        ExportConfig(checkpoint="x", out="y", max_batch=0).validate()
    with pytest.raises(ConfigError, match="gate override"):
        ExportConfig(checkpoint="x", out="y", gate=("int8=0.5",)).validate()
    with pytest.raises(ConfigError, match="unknown part"):
        ExportConfig(checkpoint="x", out="y", int8_keep_float=("softmax",)).validate()
    with pytest.raises(ConfigError, match="cannot be combined"):
        ExportConfig(checkpoint="x", out="y", int8_keep_float=("none", "head")).validate()
    assert ExportConfig(checkpoint="x", out="y", int8_keep_float=("none",)).int8_float_roles == ()


def _cfg(ckpt, tmp_path, **kw):
    base = dict(
        checkpoint=str(ckpt),
        out=str(tmp_path / "b"),
        formats=("onnx",),
        eval_images=20,
        max_batch=2,
        optimise=False,
        latency_repeats=1,
    )
    return ExportConfig(**{**base, **kw})


def test_missing_checkpoint(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        export_bundle(_cfg(tmp_path / "nope", tmp_path))


def test_checkpoint_without_card(tiny_checkpoint, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck)
    (ck / "card.json").unlink()
    with pytest.raises(SourceError, match="no model card"):
        export_bundle(_cfg(ck, tmp_path))


def test_corrupt_checkpoint(tiny_checkpoint, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck)
    (ck / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SourceError, match="cannot read weights"):
        export_bundle(_cfg(ck, tmp_path))


def test_eval_data_missing(tiny_checkpoint, tmp_path):
    with pytest.raises(EvalDataError, match="not a folder"):
        export_bundle(_cfg(tiny_checkpoint, tmp_path, eval_data=str(tmp_path / "no-such-folder")))


def test_eval_data_with_wrong_classes(tiny_checkpoint, tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (28, 28), color=40 * i).save(root / cls / f"{i}.png")
    with pytest.raises(EvalDataError, match="classes"):
        export_bundle(_cfg(tiny_checkpoint, tmp_path, eval_data=str(root)))


def test_serve_selects_a_gated_artifact_from_the_bundle(exported_bundle):
    from serve.preprocess import Preprocessor
    from serve.select import select_runtime

    bundle = load_bundle(exported_bundle.bundle)
    sel = select_runtime(bundle, "auto", device="cpu")
    try:
        assert sel.artifact.servable and sel.artifact.gate["passed"]
        pre = Preprocessor.from_card(bundle.preprocess)
        from PIL import Image

        x = pre.batch([Image.new("L", (28, 28), color=c) for c in (0, 128, 255)])
        assert sel.runtime.infer(x).shape == (3, 10)
    finally:
        sel.runtime.close()
