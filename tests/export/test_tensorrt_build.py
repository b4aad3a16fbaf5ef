"""TensorRT's first GPU run, prepared on the CPU: the files TensorRT parses, the timing cache, a failing build.

What TensorRT itself does cannot run here (no GPU, and its packages cannot be installed from the public index),
so the engine builds below go through tests/export/fake_tensorrt.py, a test double of the ``tensorrt`` package
that checks what onnx-tensorrt checks of the file it parses. Everything around it (quantization, the FP16
conversion, the pipeline, the bundle, the gate, serving's selection) is the real code.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.errors import ToolMissing
from export.fp16 import FP16_BLOCKED_OPS, fp16_onnx
from export.quantize import TENSORRT_RECIPE, quantize_static_qdq
from export.tensorrt_build import attach_timing_cache, save_timing_cache
from tests.export.conftest import ARCH_KWARGS
from tests.export.fake_tensorrt import DEVICE_TAG, BuilderConfig, make_fake_tensorrt

FACTS = {"tensorrt": "11.4.0.106", "gpu": "TensorRT Test Double GPU", "compute_capability": "9.0"}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Path, object]:
    """A random-init tiny ViT (the test checkpoint's architecture) exported the way export/ does."""
    import timm
    import torch

    torch.manual_seed(0)
    kwargs = {k: v for k, v in ARCH_KWARGS.items() if k != "global_pool"}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, global_pool="avg", **kwargs).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, 1, 32, 32),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path, model


def int32_bias_dequantizers(model: onnx.ModelProto) -> list[str]:
    """Conv/Gemm nodes whose bias comes from a DequantizeLinear of an INT32 tensor (what TensorRT refuses)."""
    int32 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT32}
    producer = {o: n for n in model.graph.node for o in n.output}
    bad = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            dq = producer.get(node.input[2])
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in int32:
                bad.append(f"{node.op_type} {node.name}")
    return bad


def unsorted_inputs(model: onnx.ModelProto) -> list[str]:
    known = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    late = []
    for node in model.graph.node:
        late += [f"{node.name}:{i}" for i in node.input if i not in known]
        known |= set(node.output)
    return late


def test_tensorrt_qdq_keeps_biases_float(tiny_onnx, tmp_path):
    src, _ = tiny_onnx
    calib = np.random.default_rng(0).standard_normal((16, 1, 32, 32)).astype(np.float32)
    settings = quantize_static_qdq(
        src, tmp_path / "trt.onnx", calib, flavour="tensorrt", recipe=TENSORRT_RECIPE, work_dir=tmp_path
    )
    q = onnx.load(str(tmp_path / "trt.onnx"))
    ops = {n.op_type for n in q.graph.node}
    assert {"Conv", "Gemm"} <= ops and settings["bias"] == "float"
    producers = {o: n for n in q.graph.node for o in n.output}
    for node in (n for n in q.graph.node if n.op_type in ("Conv", "Gemm")):  # patch embedding and head run in INT8
        assert producers[node.input[1]].op_type == "DequantizeLinear", node.name
    assert int32_bias_dequantizers(q) == []
    # explicit quantization as TensorRT wants it: int8 everywhere, zero points 0 (symmetric)
    inits = {t.name: t for t in q.graph.initializer}
    zero_points = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)
    assert all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)
    # and the check can fail: ONNX Runtime's default (QuantizeBias on) produces exactly what TensorRT refuses
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from export.quantize import ArrayReader

    quantize_static(
        str(src),
        str(tmp_path / "default.onnx"),
        ArrayReader(calib),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    assert len(int32_bias_dequantizers(onnx.load(str(tmp_path / "default.onnx")))) >= 2  # patch embed + head


def test_fp16_graph_is_sorted_checked_and_answers_like_fp32(tiny_onnx, tmp_path):
    import onnxruntime as ort
    import torch
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, model = tiny_onnx
    raw = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=FP16_BLOCKED_OPS)
    assert unsorted_inputs(raw), "the converter's own output is expected to be out of order (the defect fixed here)"

    dst = fp16_onnx(src, tmp_path / "model.fp16.onnx")
    m = onnx.load(str(dst))
    onnx.checker.check_model(m, full_check=True)
    assert unsorted_inputs(m) == []
    fp16_inits = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(fp16_inits) > 10  # the weights really are float16
    ln = [n for n in m.graph.node if n.op_type == "LayerNormalization"]
    producers = {o: n for n in m.graph.node for o in n.output}
    assert ln and all(producers[n.input[0]].op_type == "Cast" for n in ln)  # LayerNorm runs in FP32 behind a Cast
    assert [i.type.tensor_type.elem_type for i in m.graph.input] == [onnx.TensorProto.FLOAT]  # FP32 I/O
    # it answers like the FP32 model (ONNX Runtime's CPU provider runs float16 graphs too)
    x = np.random.default_rng(1).standard_normal((5, 1, 32, 32)).astype(np.float32)
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 2e-2 * max(1.0, float(np.abs(ref).max()))


def test_repeated_casts_of_older_onnxruntime_converters_are_merged():
    """onnxruntime(-gpu) < 1.32 repeats an identical Cast per consumer of one FP16 tensor (not SSA)."""
    from onnx import TensorProto, helper

    from export.fp16 import _drop_duplicate_nodes

    cast = helper.make_node("Cast", ["h"], ["h_cast_to_fp32"], to=TensorProto.FLOAT, name="h_cast_to_fp32_node")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16, name="to16"),
            cast,
            helper.make_node("Softmax", ["h_cast_to_fp32"], ["a"], name="softmax"),
            cast,
            helper.make_node("Erf", ["h_cast_to_fp32"], ["b"], name="erf"),
            helper.make_node("Add", ["a", "b"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError, match="single static assignment"):
        onnx.checker.check_model(model, full_check=True)
    assert _drop_duplicate_nodes(model.graph) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node] == ["to16", "h_cast_to_fp32_node", "softmax", "erf", "add"]


def test_matching_timing_cache_is_loaded_and_saved(tmp_path):
    path = tmp_path / "timing.cache"
    path.write_bytes(DEVICE_TAG + b"old timings")
    config = BuilderConfig(make_fake_tensorrt())
    assert attach_timing_cache(config, path) == "loaded"
    assert config.cache.blob == DEVICE_TAG + b"old timings"
    config.cache.blob = DEVICE_TAG + b"new timings"
    assert save_timing_cache(config, path) and path.read_bytes() == DEVICE_TAG + b"new timings"


@pytest.mark.parametrize("stored", [b"TRT-OTHER-GPU:timings", b"garbage, not a cache"])
def test_mismatched_or_unreadable_timing_cache_is_discarded_not_fatal(tmp_path, caplog, stored):
    path = tmp_path / "timing.cache"
    path.write_bytes(stored)
    config = BuilderConfig(make_fake_tensorrt())
    with caplog.at_level(logging.WARNING, logger="export.tensorrt_build"):
        status = attach_timing_cache(config, path)
    assert status.startswith("discarded (") and status.endswith("new")
    assert "discarded" in caplog.text and str(path) in caplog.text
    assert config.cache is not None and config.cache.blob == b""  # a fresh cache was attached instead
    config.cache.blob = DEVICE_TAG + b"timings of this GPU"
    assert save_timing_cache(config, path) and path.read_bytes() == DEVICE_TAG + b"timings of this GPU"


def test_missing_timing_cache_after_build_only_warns(tmp_path, caplog):
    path = tmp_path / "timing.cache"
    path.write_bytes(DEVICE_TAG + b"keep me")
    config = BuilderConfig(make_fake_tensorrt(lose_cache=True))  # get_timing_cache() returns None
    attach_timing_cache(config, path)
    with caplog.at_level(logging.WARNING, logger="export.tensorrt_build"):
        assert save_timing_cache(config, path) is False
    assert path.read_bytes() == DEVICE_TAG + b"keep me" and "no timing cache" in caplog.text


@pytest.fixture
def fake_trt(monkeypatch):
    """Install the TensorRT test double for one test: its package, a GPU it reports, the status probe."""
    import export.gpu_artifacts as gpu_artifacts
    import export.tensorrt_build as tb

    def install(**kw):
        fake = make_fake_tensorrt(**kw)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        monkeypatch.setattr(tb, "device_facts", lambda: {**FACTS, "tensorrt": fake.__version__})
        # the status probe is patched where the export looks it up (export.gpu_artifacts.format_status)
        monkeypatch.setattr(gpu_artifacts, "tensorrt_status", lambda: (True, "TensorRT test double"))
        return fake

    return install


def _export(tiny_checkpoint, out: Path, formats: tuple[str, ...], **kw):
    from export.config import ExportConfig
    from export.pipeline import export_bundle

    cfg = ExportConfig(
        checkpoint=str(tiny_checkpoint),
        out=str(out),
        formats=formats,
        eval_images=50,
        calib_images=16,
        max_batch=4,
        latency_repeats=1,
        optimise=False,
        threads=1,
        **kw,
    )
    return export_bundle(cfg)


def test_failed_tensorrt_build_still_writes_the_bundle(tiny_checkpoint, tmp_path, fake_trt):
    from serve.bundle import load_bundle
    from serve.select import select_runtime

    fake_trt(build="raise")
    r = _export(tiny_checkpoint, tmp_path / "b", ("onnx", "tensorrt-fp16", "tensorrt-int8"))
    assert r.exit_code == 3 and set(r.failed) == {"tensorrt-fp16", "tensorrt-int8"}
    bundle = load_bundle(r.bundle)  # written, and every servable artifact verifies
    for name in ("tensorrt-fp16", "tensorrt-int8"):
        a = bundle.artifact(name)
        assert not a.servable and a.reason.startswith("build failed: RuntimeError: TensorRT test double")
        assert a.gate["passed"] is False and a.gate["failures"] == [a.reason]
        assert not (r.bundle / a.file).exists() and not (r.bundle / (a.file + ".json")).exists()
    assert bundle.artifact("onnx-fp32").servable and bundle.artifact("onnx-fp32").gate["passed"]
    assert "tensorrt-fp16 not servable: build failed" in "\n".join(r.report["notes"])
    assert "build failed" in (r.bundle / "report.md").read_text()
    sel = select_runtime(bundle, "auto", device="cpu", threads=1)
    try:
        assert sel.artifact.name == "onnx-fp32" and "tensorrt-int8: not servable (build failed" in sel.reason
    finally:
        sel.runtime.close()


def test_tensorrt_build_that_returns_no_engine_is_recorded(tiny_checkpoint, tmp_path, fake_trt):
    fake_trt(build="none")
    r = _export(tiny_checkpoint, tmp_path / "b", ("onnx", "tensorrt-fp16"))
    (a,) = [a for a in r.report["artifacts"] if a["name"] == "tensorrt-fp16"]
    assert not a["servable"] and "TensorRT could not build the fp16 engine" in a["reason"]


def test_tensorrt_builds_leave_no_by_products_and_parse_clean_graphs(tiny_checkpoint, tmp_path, fake_trt):
    fake = fake_trt()  # TensorRT 11: strongly typed, FP16 from a converted graph
    cache = tmp_path / "cache" / "timing.cache"
    cache.parent.mkdir()
    cache.write_bytes(b"TRT-OTHER-GPU:timings")  # made elsewhere: must be discarded, not fatal
    r = _export(tiny_checkpoint, tmp_path / "b", ("onnx", "tensorrt-fp16", "tensorrt-int8"), timing_cache=str(cache))
    files = {p.name for p in r.bundle.iterdir()}
    expected = {"bundle.json", "report.json", "report.md", "report.png", "model.onnx"}
    expected |= {f"model.{p}.plan" for p in ("fp16", "int8")} | {f"model.{p}.plan.json" for p in ("fp16", "int8")}
    assert files == expected
    assert len(fake.parsed) == 2
    fp16_model, int8_model = (p["model"] for p in fake.parsed)  # FORMATS order: fp16 first
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16_model.graph.initializer)
    assert not Path(fake.parsed[0]["path"]).is_relative_to(r.bundle)  # converted in a temporary folder
    assert any(n.op_type == "QuantizeLinear" for n in int8_model.graph.node)
    side = json.loads((r.bundle / "model.fp16.plan.json").read_text())
    assert side["typing"] == "strong" and side["timing_cache"].startswith("discarded (")
    assert side["profile"]["max"] == [4, 1, 32, 32] and side["gpu"] == FACTS["gpu"]
    assert json.loads((r.bundle / "model.int8.plan.json").read_text())["timing_cache"] == "loaded"
    assert cache.read_bytes() == DEVICE_TAG + b"timings"  # replaced by this device's cache
    # no GPU here: the engines were built, but the gate cannot open them, and says why
    for name in ("tensorrt-fp16", "tensorrt-int8"):
        (a,) = [a for a in r.report["artifacts"] if a["name"] == name]
        assert not a["servable"] and "cannot open with serve/ runtime" in a["reason"]


def test_tensorrt_10_build_uses_precision_flags(tiny_checkpoint, tmp_path, fake_trt):
    fake = fake_trt(version="10.16.0.1")
    r = _export(tiny_checkpoint, tmp_path / "b", ("onnx", "tensorrt-fp16"))
    assert fake.BuilderFlag.FP16 in fake.configs[0].flags and fake.network_flags == 0
    assert not any(t.data_type == onnx.TensorProto.FLOAT16 for t in fake.parsed[0]["model"].graph.initializer)
    assert json.loads((r.bundle / "model.fp16.plan.json").read_text())["typing"] == "weak (builder flags)"


def test_requesting_tensorrt_without_it_names_the_missing_part(tiny_checkpoint, tmp_path):
    from export.tensorrt_build import tensorrt_status

    ok, why = tensorrt_status()
    if ok:
        pytest.skip("TensorRT is usable on this machine")
    with pytest.raises(ToolMissing) as err:
        _export(tiny_checkpoint, tmp_path / "b", ("onnx", "tensorrt-fp16"))
    assert "tensorrt-fp16 requested, but " in str(err.value) and why in str(err.value)
    assert any(part in why for part in ("package", "libraries", "cuda-python", "driver", "GPU"))
    assert not (tmp_path / "b").exists()  # refused before any work
