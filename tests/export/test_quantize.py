"""INT8: precision-sensitive ops stay float; settings recorded."""

from __future__ import annotations

import collections

import onnx

from export.quantize import STATIC_OPS


def test_layernorm_and_softmax_stay_float(exported_bundle):
    root = exported_bundle.bundle
    fp32 = onnx.load(str(root / "model.onnx"))
    for file in ("model.int8.onnx", "model.int8-dynamic.onnx"):
        q = onnx.load(str(root / file))
        producers = {o: n for n in q.graph.node for o in n.output}
        ops = collections.Counter(n.op_type for n in q.graph.node)
        assert (
            ops["LayerNormalization"] == collections.Counter(n.op_type for n in fp32.graph.node)["LayerNormalization"]
        )
        assert not any(
            n.op_type.startswith("QLinear") and n.op_type.endswith(("Softmax", "LayerNormalization"))
            for n in q.graph.node
        )
        for node in q.graph.node:  # LayerNorm runs in float with float gamma/beta, never dequantized weights
            if node.op_type == "LayerNormalization":
                assert all(i not in producers or producers[i].op_type != "DequantizeLinear" for i in node.input[1:])
        assert ops.get("DequantizeLinear", 0) + ops.get("MatMulInteger", 0) > 0  # something was quantized
    settings = exported_bundle.report["quantization"]["onnx-int8"]
    assert settings["per_channel"] and settings["calibration"] == "minmax" and settings["ops"] == list(STATIC_OPS)
    assert settings["calibration_images"] == 64
