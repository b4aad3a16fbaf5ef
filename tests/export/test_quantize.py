"""INT8 recipes: graph roles, what stays float, settings recorded, batch-wise calibration, the QDQ debugger.

Structure only (which nodes are quantized, what the report says): never how a CPU's INT8 kernels round.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest

from export.errors import ConversionError
from export.quantize import DEFAULT_RECIPE, ArrayReader, StaticRecipe, node_roles, quantize_static_qdq

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def test_node_roles_of_a_timm_vit(exported_bundle):
    roles = node_roles(onnx.load(str(exported_bundle.bundle / "model.onnx")))
    counts = collections.Counter(roles.values())
    # 2 blocks: qkv, proj, fc1, fc2 each; q @ k^T and softmax @ v each; one patch embedding, one head
    assert counts == {"linear": 8, "attention": 4, "patch_embed": 1, "head": 1}
    assert all("attn" in name for name, role in roles.items() if role == "attention")


def _dequantized_inputs(model: onnx.ModelProto) -> dict[str, set[str]]:
    """{op_type: names of its nodes fed by a DequantizeLinear} in a QDQ model."""
    producers = {o: n for n in model.graph.node for o in n.output}
    fed: dict[str, set[str]] = collections.defaultdict(set)
    for n in model.graph.node:
        if any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input):
            fed[n.op_type].add(n.name)
    return fed


def test_default_recipe_keeps_attention_and_normalisation_float(exported_bundle):
    root = exported_bundle.bundle
    fp32 = onnx.load(str(root / "model.onnx"))
    roles = node_roles(fp32)
    q = onnx.load(str(root / "model.int8.onnx"))
    fed = _dequantized_inputs(q)
    ops = collections.Counter(n.op_type for n in q.graph.node)
    assert ops["LayerNormalization"] == collections.Counter(n.op_type for n in fp32.graph.node)["LayerNormalization"]
    assert not fed.get("LayerNormalization") and not fed.get("Softmax")  # float in, float gamma/beta
    quantized = {name for names in fed.values() for name in names}
    assert quantized >= {name for name, role in roles.items() if role in ("linear", "patch_embed", "head")}
    assert not quantized & {name for name, role in roles.items() if role == "attention"}
    # MatMul outputs stay float (ONNX Runtime fuses DQ->MatMul into MatMulIntegerToFloat): Q only on inputs
    producers = {o: n for n in q.graph.node for o in n.output}
    q_after_matmul = [
        n for n in q.graph.node if n.op_type == "QuantizeLinear" and producers.get(n.input[0], n).op_type == "MatMul"
    ]
    assert not q_after_matmul
    settings = exported_bundle.report["quantization"]["onnx-int8"]
    assert settings["recipe"] == DEFAULT_RECIPE.to_dict() and settings["calibration_images"] == 64
    assert settings["float_nodes"] == {"attention": 4} and settings["int8_nodes"]["linear"] == 8
    worst = [w["qdq_sqnr_db"] for w in settings["worst_layers"]]  # the QDQ debugger's ranking, in the report
    assert len(worst) == 5 and worst == sorted(worst)
    assert "where it loses most" in (root / "report.md").read_text()
    dynamic = onnx.load(str(root / "model.int8-dynamic.onnx"))
    assert any(n.op_type == "DynamicQuantizeLinear" for n in dynamic.graph.node)


def test_keep_float_roles_are_honoured(exported_bundle, tmp_path):
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    src = exported_bundle.bundle / "model.onnx"
    roles = node_roles(onnx.load(str(src)))
    recipe = StaticRecipe(keep_float=("attention", "head", "patch_embed"))
    settings = quantize_static_qdq(src, tmp_path / "q.onnx", images, recipe=recipe, work_dir=tmp_path)
    fed = _dequantized_inputs(onnx.load(str(tmp_path / "q.onnx")))
    quantized = {name for names in fed.values() for name in names}
    assert quantized & set(roles) == {name for name, role in roles.items() if role == "linear"}
    assert settings["float_nodes"] == {"attention": 4, "head": 1, "patch_embed": 1}
    with pytest.raises(ConversionError, match="unknown node role"):
        quantize_static_qdq(src, tmp_path / "x.onnx", images, recipe=StaticRecipe(keep_float=("softmax",)))


def test_array_reader_windows_count_batches():
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2, 1, 1)
    r = ArrayReader(x, batch=4)
    assert len(r) == 3 and [b["input"].shape[0] for b in r] == [4, 4, 2]
    r.set_range(1, 2)  # ONNX Runtime's strided calibration: one window of batches at a time
    assert [b["input"][0, 0, 0, 0] for b in r] == [8.0]
    r.rewind()
    assert len(list(r)) == 3


def test_qdq_debugger_ranks_the_layers_that_lose_most(exported_bundle, tmp_path):
    from export.int8_debug import layer_errors

    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    quantize_static_qdq(exported_bundle.bundle / "model.onnx", tmp_path / "q.onnx", images, work_dir=tmp_path)
    rows = layer_errors(tmp_path / "q.pre.onnx", tmp_path / "q.onnx", images[:4], top=3)
    names = {o for n in onnx.load(str(tmp_path / "q.pre.onnx")).graph.node for o in n.output}
    assert len(rows) == 3 and all(r["tensor"] in names or r["tensor"] == "input" for r in rows)
    sqnr = [r["qdq_sqnr_db"] for r in rows]
    assert sqnr == sorted(sqnr) and all(10 < s < 999 for s in sqnr)  # 8 bits: tens of dB, never exact
